"""FX rates: the local API behaves like a public daily-rates feed and dlt upserts it into Delta."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import deltalake
import pytest

from ingestion import bronze, local_service
from ingestion.fx_rates import fx_source
from ingestion.sample_data import fx
from lakehouse.config import load_settings

CURRENCIES = ["EUR", "GBP", "JPY"]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_weekend_request_returns_previous_business_day() -> None:
    with local_service.serving(CURRENCIES) as url:
        status, saturday = _get(f"{url}/fx/v1/2025-01-04?base=USD")
        _, friday = _get(f"{url}/fx/v1/2025-01-03?base=USD")
    assert status == 200
    assert saturday["date"] == "2025-01-03"
    assert saturday["rates"] == friday["rates"]
    assert set(friday["rates"]) == set(CURRENCIES)


def test_unknown_currency_is_a_client_error() -> None:
    with local_service.serving(CURRENCIES) as url:
        status, body = _get(f"{url}/fx/v1/2025-01-03?symbols=XXX")
    assert status == 422
    assert "XXX" in body["error"]


def test_rates_are_deterministic_and_plausible() -> None:
    day = date(2025, 2, 3)
    assert fx.rate(day, "EUR") == fx.rate(day, "EUR")
    assert fx.rate(day, "EUR", seed=1) != fx.rate(day, "EUR", seed=2)
    assert 0.8 < fx.rate(day, "EUR") < 1.05
    assert fx.rate(day, "USD") == 1.0


@pytest.fixture()
def tmp_settings(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    return load_settings()


def _load(settings, url: str, start: date, end: date) -> bronze.LoadSummary:
    return bronze.run(settings, "fx", fx_source(url, CURRENCIES, start, end))


def test_load_writes_a_delta_table_and_rerun_upserts(tmp_settings) -> None:
    start, end = date(2025, 1, 1), date(2025, 1, 14)  # 10 business days
    table_path = tmp_settings.bronze_dir / "fx" / "rates"
    with local_service.serving(CURRENCIES) as url:
        first = _load(tmp_settings, url, start, end)
        assert first.rows_by_table == {"rates": 10 * len(CURRENCIES)}
        table = deltalake.DeltaTable(str(table_path))
        assert table.to_pyarrow_table().num_rows == 30

        # The rerun re-reads only the revision window (last 3 days) and merges it.
        second = _load(tmp_settings, url, start, end)
        assert 0 < second.rows < first.rows
        table = deltalake.DeltaTable(str(table_path))
        assert table.version() > 0
        rows = table.to_pyarrow_table().to_pylist()
    assert len(rows) == 30, "an upsert must not duplicate rows"
    assert len({(r["rate_date"], r["currency"]) for r in rows}) == 30
    assert all(fx.is_business_day(r["rate_date"]) for r in rows)
    eur_jan_3 = next(
        r for r in rows if r["rate_date"] == date(2025, 1, 3) and r["currency"] == "EUR"
    )
    assert eur_jan_3["rate"] == fx.rate(date(2025, 1, 3), "EUR")


def test_incremental_state_only_fetches_new_days(tmp_settings) -> None:
    start = date(2025, 1, 1)
    with local_service.serving(CURRENCIES) as url:
        _load(tmp_settings, url, start, start + timedelta(days=13))
        later = _load(tmp_settings, url, start, start + timedelta(days=20))
    # Days 15-21 hold 5 business days; the 3-day revision window re-reads up to 2 more.
    assert 5 * 3 <= later.rows <= 7 * 3
    rows = deltalake.DeltaTable(str(tmp_settings.bronze_dir / "fx" / "rates")).to_pyarrow_table()
    assert rows.num_rows == 15 * 3
