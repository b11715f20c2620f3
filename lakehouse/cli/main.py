"""``lakehouse <command>``: parse the command line, load the settings once, run the command.

Each command is one module of lakehouse/cli/commands with ``run(settings, args) -> int``. Only
the chosen command's module is imported, so a command pays for the layers it uses and no more:
``lakehouse --help`` and ``lakehouse status`` import neither dlt nor the Kafka client
(tests/fast/test_architecture.py checks it).
"""

from __future__ import annotations

import importlib
import sys

from lakehouse.cli.parser import build_parser
from lakehouse.core import console
from lakehouse.core.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.configure()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    command = importlib.import_module(f"lakehouse.cli.commands.{args.command}")
    return command.run(settings, args)
