"""`make bench`: the platform's wall times and ratios, measured side by side in one run."""
