"""``python -m lakehouse``: the command line (lakehouse/cli/main.py)."""

import sys

from lakehouse.cli.main import main

sys.exit(main())
