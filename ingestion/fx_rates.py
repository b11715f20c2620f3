"""FX rates: daily reference rates from an HTTP API, loaded as a daily upsert.

Strategy: the cursor is ``rate_date`` (dlt incremental state); each run re-requests the last few
days (``lag``) because publishers revise recent rates, and merges on (rate_date, currency) so a
revised rate replaces the old one, a new day is inserted, and a rerun duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dlt
from dlt.sources.helpers.rest_client import RESTClient

from ingestion.contracts import GuardStats, TableContract, dlt_schema_contract, guard
from lakehouse.config import SchemaPolicy

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
)


@dlt.source(name="fx")
def fx_source(
    base_url: str,
    currencies: list[str],
    start_date: date,
    end_date: date,
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

    def published(day: date, seen: set[str]) -> Iterator[dict]:
        response = client.get(
            f"{ENDPOINT}/{day.isoformat()}",
            params={"base": base_currency, "symbols": ",".join(currencies)},
        )
        # dlt's client has retried 5xx and 429 already; what is still an error fails the load
        # (RESTClient.get, unlike paginate, does not raise on an error status by itself).
        response.raise_for_status()
        payload = response.json()
        # Weekends and holidays answer with the previous business day: keep one copy.
        if payload["date"] in seen:
            return
        seen.add(payload["date"])
        for currency, value in sorted(payload["rates"].items()):
            yield {
                "rate_date": payload["date"],
                "base_currency": payload["base"],
                "currency": currency,
                "rate": value,
            }

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
            yield from guard(
                published(day, seen),
                source="fx",
                contract=RATES,
                policy=policy,
                stats=stats,
                loaded_at=loaded_at,
            )
            day += timedelta(days=1)

    RATES.register(dlt.current.source_schema())
    if backfill:
        window = dlt.sources.incremental(
            "rate_date",
            initial_value=start_date,
            end_value=end_date + timedelta(days=1),  # the end is open
            on_cursor_value_missing="include",
        )
        yield rates(rate_date=window)
    else:
        yield rates
