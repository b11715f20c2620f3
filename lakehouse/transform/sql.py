"""A thin SQL client for the engine, over the same Thrift protocol dbt-spark uses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from lakehouse.core.config import Settings


@contextlib.contextmanager
def connect(settings: Settings) -> Iterator[Any]:
    from pyhive import hive

    conn = hive.connect(host=settings.engine.host, port=settings.engine.port, username="lakehouse")
    try:
        yield conn
    finally:
        conn.close()


class SqlError(RuntimeError):
    """Spark rejected a statement; the message is Spark's, without the Java stack."""


def query(settings: Settings, sql: str) -> list[tuple]:
    """Run one statement and return its rows (empty for statements without a result)."""
    return _execute(settings, sql)[1]


def records(settings: Settings, sql: str) -> list[dict[str, Any]]:
    """Run one statement and return its rows as dicts keyed by column name."""
    columns, rows = _execute(settings, sql)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _execute(settings: Settings, sql: str) -> tuple[list[str], list[tuple]]:
    from pyhive.exc import OperationalError

    with connect(settings) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
            if not cursor.description:
                return [], []
            columns = [col[0] for col in cursor.description]
            return columns, [tuple(row) for row in cursor.fetchall()]
        except OperationalError as exc:
            status = getattr(exc.args[0], "status", None) if exc.args else None
            message = getattr(status, "errorMessage", None) or str(exc)
            raise SqlError(message) from None
        finally:
            cursor.close()
