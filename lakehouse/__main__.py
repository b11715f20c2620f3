"""``python -m lakehouse``: the command line (lakehouse/cli/main.py)."""

from lakehouse.cli.main import run

run()
