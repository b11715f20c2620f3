"""Backfill: reload a part of one source into bronze, then rebuild exactly what depends on it.

For what a regular load cannot cover: a publisher corrects a day older than the revision window
FX re-reads, a CRM export missed a week, a Redshift range was lost, a stretch of Kafka events
must be read again. ``lakehouse backfill --source <name> ...`` does, each as its load strategy
allows (``SourceSpec.backfill`` in ingestion/<source>.py declares what is possible):

=========  ==================  =============================================================
source     modes               what is reloaded
=========  ==================  =============================================================
snowflake  reload,             the whole snapshot as of now (a batch replace, as every load)
           downstream-only     or nothing: only the models downstream are rebuilt
crm        window (time)       the records whose ``updated_at`` is in ``[from, to)``, upserted
redshift   window (time), ids  the rows whose event time (or id) is in ``[from, to)``,
                               insert-only: a row bronze has is neither duplicated nor rewritten
fx         window (days)       the rates of days ``from``..``to`` (both included), upserted
kafka      window (time)       the messages whose timestamp is in ``[from, to)``, insert-only
                               by (topic, partition, offset): a replay adds nothing twice
=========  ==================  =============================================================

A window never reads or moves what the regular load resumes from (dlt's incremental with an
``end_value`` keeps its state in a throwaway copy; Kafka's bounded replay advances a copy of the
offsets), so the next regular load reads what it would have.

Then ``dbt build --select source:<source>.<table>+`` for the bronze tables the backfill wrote
(the ones asked for, and the source's quarantine when the reload added to it): every model
downstream of them with its tests, through dbt-ol (lineage), nothing else. The nodes dbt ran are
logged and appended, with the request and the load's counts, to ``<home>/state/backfills.jsonl``.
``make publish`` then carries the changed rows to the warehouses.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ingestion import registry
from ingestion.bronze import LoadSummary
from ingestion.contracts import QUARANTINE_TABLE
from ingestion.spec import SourceSpec
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.pipeline import home_record, loads
from lakehouse.stack import source_systems
from lakehouse.transform import build_selection
from lakehouse.transform.dbt_cli import dbt

log = logging.getLogger(__name__)

MODES = ("window", "ids", "reload", "downstream-only")
RECORD = "backfills.jsonl"


class BackfillError(ValueError):
    """The backfill cannot run as asked; the message says why and what to do instead."""


@dataclass(frozen=True)
class Request:
    """One backfill, validated: ``start``/``end`` are dates (``days``), UTC datetimes (``time``)
    or ints (``ids``), None for ``reload`` and ``downstream-only``; ``tables`` empty: all."""

    source: str
    mode: str
    by: str | None = None  # days | time | ids: what start and end are
    start: Any = None
    end: Any = None
    tables: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.mode in ("reload", "downstream-only"):
            what = self.mode
        elif self.by == "days":
            what = f"days {self.start}..{self.end}"
        else:
            what = f"{self.by} [{_text(self.start)}, {_text(self.end)})"
        return f"{self.source} {what}" + (f" of {', '.join(self.tables)}" if self.tables else "")


@dataclass
class BackfillResult:
    request: Request
    load: LoadSummary | None  # None: downstream-only
    rebuilt: bool
    tables: list[str] = field(default_factory=list)  # bronze tables written (source tables)
    selectors: list[str] = field(default_factory=list)  # what dbt build selected
    nodes: list[str] = field(default_factory=list)  # unique ids of the nodes dbt ran


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _declared(source: str) -> SourceSpec:
    if source not in registry.names():
        raise BackfillError(
            f"{source} cannot be backfilled: it is not a source of this platform "
            f"(choose from {', '.join(registry.names())})"
        )
    return registry.spec(source)


def _day(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        if value.time() != datetime.min.time():
            raise BackfillError(f"{name} {value}: this source is reloaded by whole days")
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BackfillError(f"{name} {value!r} is no date (YYYY-MM-DD)") from None


def _moment(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise BackfillError(f"{name} {value!r} is no ISO-8601 date or time") from None
    # a time without a zone is UTC, as every timestamp of the lake
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _id(value: Any, name: str) -> int:
    if isinstance(value, bool) or value is None:
        raise BackfillError(f"{name} {value!r} is no row id")
    try:
        number = int(str(value))
    except ValueError:
        raise BackfillError(f"{name} {value!r} is no row id (an integer)") from None
    if number < 0:
        raise BackfillError(f"{name} {number} is negative: row ids start at 0")
    return number


def validate(
    source: str,
    start: Any = None,
    end: Any = None,
    mode: str = "window",
    tables: tuple[str, ...] | list[str] = (),
    now: datetime | None = None,
) -> Request:
    """Refuse a backfill that cannot run, before anything starts; the request, typed.

    Refused: an unknown source or mode, a mode the source does not declare, a window that is
    empty (``from >= to``; for days, ``to`` before ``from``) or reaches into the future, a
    window given to a mode that takes none, and tables the source does not load by name.
    """
    spec = _declared(source)
    declared = spec.backfill
    if mode not in MODES:
        raise BackfillError(f"unknown backfill mode {mode!r}; choose from {', '.join(MODES)}")
    if mode not in declared.supported:
        if mode == "window" and declared.why_not:
            by = "date" if declared.window == "days" else "a time window"
            raise BackfillError(f"{source} cannot be backfilled by {by}: {declared.why_not}")
        modes = ", ".join(declared.supported) or "none"
        raise BackfillError(f"{source} does not support backfill mode {mode!r} (it supports: "
                            f"{modes})")  # fmt: skip
    tables = _valid_tables(spec, tuple(tables))
    now = now or datetime.now(UTC)
    if mode in ("reload", "downstream-only"):
        if start is not None or end is not None:
            raise BackfillError(f"{mode} takes no window: the {source} snapshot is read whole")
        return Request(source, mode, tables=tables)
    if start is None or end is None:
        raise BackfillError(f"a {mode} backfill of {source} needs both --from and --to"
                            if mode == "window" else
                            f"an ids backfill of {source} needs --from-id and --to-id")  # fmt: skip
    if mode == "ids":
        low, high = _id(start, "--from-id"), _id(end, "--to-id")
        if low >= high:
            raise BackfillError(f"the id range [{low}, {high}) is empty: --from-id must be below "
                                "--to-id (the end is excluded)")  # fmt: skip
        return Request(source, mode, "ids", low, high, tables)
    if declared.window == "days":
        first, last = _day(start, "--from"), _day(end, "--to")
        if last < first:
            raise BackfillError(f"the range ends ({last}) before it starts ({first})")
        if last > now.date():
            raise BackfillError(f"the range {first}..{last} reaches into the future (today is "
                                f"{now.date()}): nothing is published there yet")  # fmt: skip
        return Request(source, mode, "days", first, last, tables)
    begin, finish = _moment(start, "--from"), _moment(end, "--to")
    if begin >= finish:
        raise BackfillError(f"the window [{begin.isoformat()}, {finish.isoformat()}) is empty: "
                            "--from must be before --to (the end is excluded)")  # fmt: skip
    if finish > now:
        raise BackfillError(f"the window ends in the future ({finish.isoformat()}; now is "
                            f"{now.isoformat(timespec='seconds')}): a window must be complete "
                            "to be reloaded exactly; end it at now or earlier")  # fmt: skip
    return Request(source, mode, "time", begin, finish, tables)


def _valid_tables(spec: SourceSpec, tables: tuple[str, ...]) -> tuple[str, ...]:
    """The tables asked for, once each; only a source that loads tables by name takes them
    (which of them it loads here, ``configured_tables`` checks against the settings)."""
    if tables and "tables" not in spec.settings.model_fields:
        raise BackfillError(f"{spec.name} takes no --table: a backfill reads all its tables")
    return tuple(dict.fromkeys(tables))


def configured_tables(settings: Settings, request: Request) -> list[str]:
    """The bronze tables the backfill reloads: the ones asked for, or every one the source
    loads here; refuse a table it does not load (a typo, or one lakehouse.yml leaves out)."""
    conf = registry.conf(request.source, settings)
    configured = list(registry.spec(request.source).contracts(conf))
    missing = [t for t in request.tables if t not in configured]
    if missing:
        raise BackfillError(
            f"{request.source} does not load {', '.join(missing)} here "
            f"(sources.{request.source}.tables: {', '.join(configured)})"
        )
    return list(request.tables) or configured


def backfill(
    settings: Settings,
    source: str,
    start: Any = None,
    end: Any = None,
    rebuild: bool = True,
    mode: str = "window",
    tables: tuple[str, ...] | list[str] = (),
) -> BackfillResult:
    """Reload ``source`` as ``mode`` allows (``start``..``end``: see ``validate``), then rebuild
    the models downstream of the bronze tables it wrote."""
    return run(settings, validate(source, start, end, mode, tables), rebuild)


def run(settings: Settings, request: Request, rebuild: bool = True) -> BackfillResult:
    """Carry out a validated ``request``."""
    conf = registry.conf(request.source, settings)
    tables = configured_tables(settings, request)
    result = BackfillResult(request, None, rebuild, tables=list(tables))
    log.info(f"backfill of {request.describe()}")
    if request.mode != "downstream-only":
        scoped = _scoped(settings, request.source, conf, request.tables)
        result.load = _load(scoped, request)
        written = result.load.tables.get(QUARANTINE_TABLE)
        if written is not None and written.versions:  # the reload quarantined records
            result.tables.append(QUARANTINE_TABLE)
    result.selectors = [f"source:{request.source}.{table}+" for table in result.tables]
    if rebuild:
        result.nodes = _rebuild(settings, request, result.selectors)
    _record(settings, result)
    return result


def _scoped(settings: Settings, source: str, conf: Any, tables: tuple[str, ...]) -> Settings:
    """The settings with the source's ``tables`` narrowed to the backfill's."""
    if not tables:
        return settings
    narrowed = conf.model_copy(update={"tables": list(tables)})
    sources = settings.sources.model_copy(update={source: narrowed})
    return settings.model_copy(update={"sources": sources})


def _load(settings: Settings, request: Request) -> LoadSummary:
    if adopted := home_record.check(settings):
        log.info(adopted)
    home_record.remember(settings)
    window = None
    if request.mode in ("window", "ids"):
        window = loads.Window(request.start, request.end, request.by or "days")
    with source_systems.running(settings) as endpoints:
        [load] = loads.ingest(settings, endpoints, [request.source], window=window)
    return load


def _rebuild(settings: Settings, request: Request, selectors: list[str]) -> list[str]:
    """``dbt build`` of exactly the models downstream of ``selectors``, with their tests; the
    unique ids of the nodes it ran."""
    results = target_dir() / "run_results.json"
    results.unlink(missing_ok=True)  # the nodes are this build's only
    log.info(f"  dbt build --select {' '.join(selectors)}")
    done = dbt(settings, "build", "--select", *selectors, check=False)
    ran = json.loads(results.read_text()) if results.is_file() else {}
    for line in build_selection.summary(ran):
        log.info(f"  {line}")
    if done.returncode != 0:
        raise BackfillError(
            f"bronze was reloaded ({request.describe()}), but the rebuild of its downstream "
            f"models failed (dbt exit {done.returncode}); fix it, then run "
            f"`lakehouse dbt build --select {' '.join(selectors)}`"
        )
    # the project's on-run-start/end hooks run with any build: not nodes of the graph
    return sorted(r["unique_id"] for r in ran.get("results", [])
                  if not r["unique_id"].startswith("operation."))  # fmt: skip


def _record(settings: Settings, result: BackfillResult) -> Path:
    """Append what the backfill did to ``<home>/state/backfills.jsonl``: the trail a person
    reads to know which periods were reloaded, when, and which models were rebuilt."""
    path = settings.state_dir / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    request = {k: _text(v) if v is not None else None for k, v in asdict(result.request).items()}
    request["tables"] = list(result.request.tables)
    line = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "request": request,
        "rows_by_table": result.load.rows_by_table if result.load else {},
        "tables": result.tables,
        "selectors": result.selectors,
        "nodes": result.nodes,
    }
    with path.open("a") as out:
        out.write(json.dumps(line) + "\n")
    return path
