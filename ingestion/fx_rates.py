"""FX rates: daily reference rates from an HTTP API, loaded as a daily upsert.

Strategy: the cursor is ``rate_date`` (dlt incremental state); each run re-requests the last few
days (``lag``) because publishers revise recent rates, and merges on (rate_date, currency) so a
revised rate replaces the old one and a rerun duplicates nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import dlt
from dlt.sources.helpers.rest_client import RESTClient

# Publishers revise the most recent days; re-read them on every run (the merge makes it safe).
REVISION_WINDOW_DAYS = 3


@dlt.source(name="fx")
def fx_source(
    base_url: str,
    currencies: list[str],
    start_date: date,
    end_date: date,
    base_currency: str = "USD",
) -> Iterator[dlt.sources.DltResource]:
    """Daily rates of ``currencies`` against ``base_currency``, ``start_date`` to ``end_date``."""
    client = RESTClient(base_url=base_url)

    @dlt.resource(
        name="rates",
        primary_key=("rate_date", "currency"),
        write_disposition={"disposition": "merge", "strategy": "upsert"},
        columns={
            "rate_date": {"data_type": "date", "nullable": False},
            "base_currency": {"data_type": "text", "nullable": False},
            "currency": {"data_type": "text", "nullable": False},
            "rate": {"data_type": "double", "nullable": False},
        },
    )
    def rates(
        rate_date: dlt.sources.incremental[date] = dlt.sources.incremental(
            "rate_date", initial_value=start_date, lag=REVISION_WINDOW_DAYS
        ),
    ) -> Iterator[dict]:
        day = rate_date.start_value or start_date
        seen: set[str] = set()
        while day <= end_date:
            payload = client.get(
                f"/fx/v1/{day.isoformat()}",
                params={"base": base_currency, "symbols": ",".join(currencies)},
            ).json()
            # Weekends and holidays answer with the previous business day: keep one copy.
            if payload["date"] not in seen:
                seen.add(payload["date"])
                published = date.fromisoformat(payload["date"])
                for currency, value in sorted(payload["rates"].items()):
                    yield {
                        "rate_date": published,
                        "base_currency": payload["base"],
                        "currency": currency,
                        "rate": value,
                    }
            day += timedelta(days=1)

    yield rates
