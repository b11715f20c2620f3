"""How progress reaches a person: modules log, the command lines print.

Every module logs its progress to its own logger (``logging.getLogger(__name__)``) and never
prints; a library caller (a test, an Airflow task) decides what to do with it. The command line
prints INFO on stdout as ``[lakehouse] <message>``, the lines of a source's load or a warehouse's
publish indented under the step that runs them, exactly as ``make run`` always read; warnings
and errors go to stderr as ``[lakehouse] warning: <message>``.
"""

from __future__ import annotations

import logging
import sys

PREFIX = "[lakehouse] "
# Loggers whose lines are the details of a step: shown indented under it.
DETAIL_LOGGERS = ("ingestion", "lakehouse.pipeline.loads", "lakehouse.pipeline.backfill",
                  "lakehouse.publish")  # fmt: skip


class StepFormatter(logging.Formatter):
    """``[lakehouse] message``; a detail logger's message indented by two spaces."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return f"{PREFIX}{record.levelname.lower()}: {record.getMessage()}"
        detail = any(record.name == d or record.name.startswith(d + ".") for d in DETAIL_LOGGERS)
        return f"{PREFIX}{'  ' if detail else ''}{record.getMessage()}"


class _Console(logging.StreamHandler):
    """Progress on stdout, warnings and errors on stderr: whatever ``sys.stdout`` and
    ``sys.stderr`` are when the record is emitted (pytest swaps them)."""

    def emit(self, record: logging.LogRecord) -> None:
        # not setStream(): it flushes the previous stream, which pytest may have closed
        self.stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        super().emit(record)


HANDLER = "lakehouse-cli"


def configure(level: int = logging.INFO) -> None:
    """Print the project's log records on stdout; calling it again changes nothing."""
    for name in ("lakehouse", "ingestion"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(h.get_name() == HANDLER for h in logger.handlers):
            handler = _Console()
            handler.set_name(HANDLER)
            handler.setFormatter(StepFormatter())
            logger.addHandler(handler)
