"""The engine's own account of a build: the SQL statements the Spark Thrift Server ran, read
from its UI's REST API (``/api/v1/applications/<id>/sql``).

A build's wall time on 2 cores says little by itself; how many statements it sent, of which
kinds, and how long Spark spent executing them says where the time went (dbt-spark sends
several statements per model: the CTAS, constraints, describes, ``show table extended``).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from lakehouse.core.config import Settings
from lakehouse.stack import engine

_UI_PORT = re.compile(r"Successfully started service 'SparkUI' on port (\d+)")
_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*", re.DOTALL)
# Delta runs a statement's work as executions of its own, described "Delta: <the statement>".
_DELTA = re.compile(r"^(\s*Delta:\s*)+")
# Spark retains the last 1000 executions by default (spark.sql.ui.retainedExecutions).
_PAGE = 10_000


def ui_port(settings: Settings) -> int | None:
    """The UI port of the engine's latest start (Spark takes 4040 or the next free one)."""
    try:
        found = _UI_PORT.findall(engine.log_file(settings).read_text(errors="replace"))
    except OSError:
        return None
    return int(found[-1]) if found else None


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


def statement_kind(description: str) -> str:
    """``create table``, ``describe table``, ``show table extended``, ``alter table``, ...:
    the first words of a statement, Delta's prefix and SQL comments (dbt's query comment)
    removed."""
    words = _COMMENT.sub(" ", _DELTA.sub("", description)).lower().split()
    if words[:3] == ["show", "table", "extended"]:
        return "show table extended"
    if words[:2] == ["create", "or"]:  # create or replace table / view
        return " ".join(words[:4])
    return " ".join(words[:2]) or "(empty)"


def summarise(executions: list[dict[str, Any]], since: datetime, until: datetime) -> dict:
    """Statements submitted in [since, until]: how many, Spark's summed execution time, and
    both by kind (the sum exceeds the wall time when dbt's threads overlap). An execution Spark
    nests under another (Delta's snapshot and commit work) is inside its root's time: it is
    counted apart, not summed again."""
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    count, total, nested = 0, 0.0, 0
    for e in executions:
        stamp = e["submissionTime"].removesuffix("GMT")
        submitted = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
        if not since <= submitted <= until:
            continue
        if e.get("rootExecutionId", e["id"]) != e["id"]:
            nested += 1
            continue
        seconds = e.get("duration", 0) / 1000
        count += 1
        total += seconds
        kind = by_kind[statement_kind(e.get("description", ""))]
        kind[0] += 1
        kind[1] += seconds
    ranked = sorted(by_kind.items(), key=lambda item: item[1][1], reverse=True)
    return {
        "statements": count,
        "nested_executions": nested,
        "spark_seconds": round(total, 2),
        "by_kind": {k: {"count": int(c), "seconds": round(s, 2)} for k, (c, s) in ranked},
    }


def statements(settings: Settings, since: datetime, until: datetime) -> dict:
    """The engine's statements in the window, summarised; empty when the UI cannot be read."""
    port = ui_port(settings)
    if port is None:
        return {}
    base = f"http://127.0.0.1:{port}/api/v1/applications"
    try:
        app = _get(base)[0]["id"]
        executions = _get(f"{base}/{app}/sql?details=false&offset=0&length={_PAGE}")
    except (urllib.error.URLError, OSError, ValueError, IndexError, KeyError):
        return {}
    return summarise(executions, since, until)
