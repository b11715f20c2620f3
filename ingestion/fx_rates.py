"""FX rates: daily reference rates from an HTTP API, loaded as a daily upsert.

Strategy: the cursor is ``rate_date`` (dlt incremental state); each run re-requests the last few
days (``lag``) because publishers revise recent rates, and merges on (rate_date, currency) so a
revised rate replaces the old one, a new day is inserted, and a rerun duplicates nothing. Every
rate of an answer is one record for the contract guard; an answer that is not shaped as rates
(or not JSON) is one record, quarantined whole with the day requested.

Configuration: dlt injects ``base_url`` from ``SOURCES__FX__BASE_URL`` (``FX_BASE_URL`` is
honoured by ingestion/locations.py) and ``currencies`` from ``SOURCES__FX__CURRENCIES``; the
platform passes the currencies and the days to read from lakehouse.yml and the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dlt
from dlt.sources.helpers.rest_client import RESTClient

from ingestion.contracts import (
    CountLoaded,
    GuardStats,
    Origin,
    TableContract,
    dlt_schema_contract,
    guard_one,
)
from ingestion.spec import Backfill, LoadRequest, SourceSpec
from lakehouse.core import naming
from lakehouse.core.config import FxSourceConfig, SchemaPolicy

# Publishers revise the most recent days; re-read them on every run (the merge makes it safe).
REVISION_WINDOW_DAYS = 3
ENDPOINT = "/fx/v1"  # + /<date>: the rates published on that day

RATES = TableContract(
    name="rates",
    columns={
        "rate_date": {"data_type": "date", "nullable": False},
        "base_currency": {"data_type": "text", "nullable": False},
        "currency": {"data_type": "text", "nullable": False},
        "rate": {"data_type": "double", "nullable": False},
    },
    required=("rate_date", "currency", "rate"),
    cursor="rate_date",
)


@dlt.source(name="fx", section="fx")
def fx_source(
    base_url: str = dlt.config.value,
    currencies: list[str] = dlt.config.value,
    start_date: date = dlt.config.value,
    end_date: date = dlt.config.value,
    base_currency: str = "USD",
    policy: SchemaPolicy | None = None,
    stats: GuardStats | None = None,
    backfill: bool = False,
) -> Iterator[dlt.sources.DltResource]:
    """Daily rates of ``currencies`` against ``base_currency``, ``start_date`` to ``end_date``.

    Incremental by default: from the last loaded day (minus the revision window) to
    ``end_date``. With ``backfill``, exactly ``start_date`` to ``end_date``: dlt's incremental
    with an ``end_value`` reads that range without reading or moving the stored watermark.
    """
    policy = policy or SchemaPolicy()
    stats = stats if stats is not None else GuardStats()
    client = RESTClient(base_url=base_url)
    loaded_at = datetime.now(UTC)

    def fetch(day: date) -> Any:
        response = client.get(
            f"{ENDPOINT}/{day.isoformat()}",
            params={"base": base_currency, "symbols": ",".join(currencies)},
        )
        # dlt's client has retried 5xx and 429 already; what is still an error fails the load
        # (RESTClient.get, unlike paginate, does not raise on an error status by itself).
        response.raise_for_status()
        try:
            return response.json()
        except (ValueError, RecursionError):  # not JSON: quarantine keeps the body's bytes
            return response.content

    def guarded_day(day: date, seen: set[str]) -> Iterator[Any]:
        args = {"source": "fx", "contract": RATES, "policy": policy, "stats": stats,
                "loaded_at": loaded_at}  # fmt: skip
        payload = fetch(day)
        locator = {"endpoint": f"{ENDPOINT}/{day.isoformat()}", "requested_day": day.isoformat()}
        for record, where in published_rows(payload, seen):
            # a whole answer is identified by its day (two days may answer the same garbage)
            identity = day.isoformat() if "whole_answer" in where else ""
            origin = Origin(record, {**locator, **where}, identity=identity)
            yield from guard_one(record, origin=origin, **args)

    @dlt.resource(
        name="rates",
        primary_key=("rate_date", "currency"),
        write_disposition={"disposition": "merge", "strategy": "upsert"},
        schema_contract=dlt_schema_contract(policy),
    )
    def rates(
        rate_date: dlt.sources.incremental[date] = dlt.sources.incremental(
            "rate_date",
            initial_value=start_date,
            lag=REVISION_WINDOW_DAYS,
            on_cursor_value_missing="include",
        ),
    ) -> Iterator[dict]:
        day, seen = rate_date.start_value or start_date, set()
        while day <= end_date:
            yield from guarded_day(day, seen)
            day += timedelta(days=1)

    RATES.register(dlt.current.source_schema())
    if backfill:
        window = dlt.sources.incremental(
            "rate_date",
            initial_value=start_date,
            end_value=end_date + timedelta(days=1),  # the end is open
            on_cursor_value_missing="include",
        )
        yield rates(rate_date=window).add_step(CountLoaded(RATES.name, stats))
    else:
        yield rates.add_step(CountLoaded(RATES.name, stats))


def published_rows(payload: Any, seen: set[str]) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The rows of one day's answer, each with where it sits in it (the currency).

    Weekends and holidays answer with the previous business day: a day already seen is skipped
    (it was read once). An answer not shaped as ``{"date", "base", "rates": {...}}`` is one
    record for the guard, which quarantines it whole.
    """
    day = payload.get("date") if isinstance(payload, dict) else None
    rates = payload.get("rates") if isinstance(payload, dict) else None
    if not isinstance(day, str) or not isinstance(rates, dict):
        yield payload, {"whole_answer": True}
        return
    if day in seen:
        return
    seen.add(day)
    for currency, value in sorted(rates.items()):
        row = {"rate_date": day, "base_currency": payload.get("base"), "currency": currency,
               "rate": value}  # fmt: skip
        yield row, {"currency": currency}


def _build(load: LoadRequest) -> Any:
    conf, window = load.conf, load.window
    return fx_source(
        load.location["base_url"],
        conf.currencies,
        window.start if window else load.first_day,
        window.end if window else load.last_day,
        conf.base_currency,
        conf.schema_policy,
        load.stats,
        backfill=window is not None,
    )


SPEC = SourceSpec(
    name="fx",
    build=_build,
    contracts=lambda conf: {RATES.name: RATES},
    reads=lambda table, conf, where, local: naming.http_endpoint(where["base_url"], ENDPOINT),
    system=lambda where: f"FX API {where['base_url']}",
    settings=FxSourceConfig,
    location={"base_url": "FX_BASE_URL"},
    backfill=Backfill(cursor=RATES.cursor),
)
