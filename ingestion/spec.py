"""What a source declares about itself, so that no layer above has to name it.

A source module (ingestion/<source>.py) ends with one ``SPEC = SourceSpec(...)``: its dlt source,
its bronze contracts, the dataset lineage says it reads, the system a failure message names, the
cursor it can be backfilled by (or why not), where its system answers and the pydantic model of
its ``sources.<name>`` settings. ingestion/registry.py collects the specs; the loader, lineage,
backfill, the dataset registry and the CLI iterate it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: naming a source (the CLI's choices) must not import dlt
    from pydantic import BaseModel

    from ingestion.contracts import GuardStats, TableContract
    from lakehouse.core.naming import DatasetId


@dataclass(frozen=True)
class Window:
    """A backfill: re-read exactly this part of a source, by what the source is read by.

    ``by`` says what ``start`` and ``end`` are: ``days`` (dates, both ends included: FX),
    ``time`` (UTC datetimes, ``[start, end)``: CRM's ``updated_at``, Redshift's event time,
    Kafka's message timestamps) or ``ids`` (integers, ``[start, end)``: Redshift's row ids).
    """

    start: Any
    end: Any
    by: str = "days"


@dataclass(frozen=True)
class Replay:
    """Re-read Kafka from an offset (every partition) or from a point in time."""

    from_offset: int | None = None
    from_time: datetime | None = None
    # a bounded replay (a backfill): stop before this time, and leave the stored offsets as
    # they were (the next regular load continues where it was)
    until_time: datetime | None = None


@dataclass(frozen=True)
class LoadRequest:
    """Everything one load of a source is given: its settings, where its system answers, this
    run's guard counters and the run's options (backfill window, replay)."""

    conf: Any  # the source's validated settings section (SourceSpec.settings)
    location: Mapping[str, str]  # SourceSpec.location's keys, resolved for this run
    stats: GuardStats
    timeout_s: float  # one request, connect or broker call (settings.source_retry)
    first_day: date  # the first day a dated source reads (sample_data.start_date)
    last_day: date  # the last day it reads: today, or the sample world's last day locally
    window: Window | None = None
    replay: Replay | None = None


@dataclass(frozen=True)
class Backfill:
    """How a part of the source can be reloaded (``lakehouse backfill``).

    ``cursor``: a window of it is re-read by this column (``window``: ``days`` or ``time``, see
    ``Window``); ``modes``: what else it supports (``ids``: a range of row ids; ``reload``: the
    whole snapshot again; ``downstream-only``: no load, the rebuild of its models only);
    ``why_not``: why a window cannot be reloaded, and what to do instead.
    """

    cursor: str | None = None
    why_not: str = ""
    window: str = "days"
    modes: tuple[str, ...] = ()

    @property
    def supported(self) -> tuple[str, ...]:
        """Every mode the source supports, ``window`` first when it has a cursor."""
        return (("window",) if self.cursor else ()) + self.modes


@dataclass(frozen=True)
class SourceSpec:
    """One source, declared once.

    ``location`` maps each argument of the dlt source that says where the system answers (a URL,
    credentials, brokers) to the production variable that sets it, "" for none. dlt resolves the
    same argument from ``SOURCES__<NAME>__<ARGUMENT>`` (ingestion/locations.py), which wins.
    Of those arguments, the ones dlt treats as secrets are in ``secrets``.
    """

    name: str
    build: Callable[[LoadRequest], Any]  # the dlt source for one load
    contracts: Callable[[Any], dict[str, TableContract]]  # conf -> bronze tables (not quarantine)
    # lineage's input dataset: (table, conf, location, local stand-in?) -> what the load reads;
    # for a stand-in that emulates another system, the location holds the identity configured
    # for it (``services.stand_ins``), not where it listens (ingestion/lineage.py)
    reads: Callable[[str, Any, Mapping[str, str], bool], DatasetId]
    system: Callable[[Mapping[str, str]], str]  # the system, as a failure names it (no secrets)
    settings: type[BaseModel]  # its ``sources.<name>`` section; defaults when the section is absent
    location: Mapping[str, str] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    backfill: Backfill = Backfill(why_not="it declares no backfill cursor")
    identity: str = "url"  # how home_record names its system: url | sqlalchemy | brokers
