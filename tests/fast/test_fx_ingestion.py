"""FX rates: the local API behaves like a public daily-rates feed and dlt upserts it into Delta."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import date, timedelta

import deltalake

from ingestion import bronze
from ingestion.fx_rates import fx_source
from lakehouse.stack import http_standin
from lakehouse.stack.sample_data import fx
from lakehouse.stack.sample_data.world import World

CURRENCIES = ["EUR", "GBP", "JPY"]
WORLD = World(scale=0.01, currencies=CURRENCIES, start_date=date(2025, 1, 1), days=14)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_weekend_request_returns_previous_business_day() -> None:
    with http_standin.serving(WORLD) as url:
        status, saturday = _get(f"{url}/fx/v1/2025-01-04?base=USD")
        _, friday = _get(f"{url}/fx/v1/2025-01-03?base=USD")
    assert status == 200
    assert saturday["date"] == "2025-01-03"
    assert saturday["rates"] == friday["rates"]
    assert set(friday["rates"]) == set(CURRENCIES)


def test_unknown_currency_and_future_day_are_client_errors() -> None:
    with http_standin.serving(WORLD) as url:
        status, body = _get(f"{url}/fx/v1/2025-01-03?symbols=XXX")
        future, _ = _get(f"{url}/fx/v1/{WORLD.end_date + timedelta(days=1)}")
    assert status == 422
    assert "XXX" in body["error"]
    assert future == 404


def test_rates_are_deterministic_and_plausible() -> None:
    day = date(2025, 2, 3)
    assert fx.rate(day, "EUR") == fx.rate(day, "EUR")
    assert fx.rate(day, "EUR", seed=1) != fx.rate(day, "EUR", seed=2)
    assert 0.8 < fx.rate(day, "EUR") < 1.05
    assert fx.rate(day, "USD") == 1.0


def _load(settings, world: World) -> bronze.LoadSummary:
    with http_standin.serving(world) as url:
        source = fx_source(url, CURRENCIES, world.start_date, world.end_date)
        return bronze.run(settings, "fx", source)


def _rows(settings) -> list[dict]:
    path = settings.bronze_dir / "fx" / "rates"
    return deltalake.DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def test_load_writes_a_delta_table_and_rerun_upserts(tmp_settings) -> None:
    first = _load(tmp_settings, WORLD)
    assert first.rows_by_table == {"rates": 10 * len(CURRENCIES)}  # 10 business days
    assert first.tables["rates"].inserted == 30

    # The rerun re-reads only the revision window (last 3 days) and merges it in place.
    second = _load(tmp_settings, WORLD)
    assert 0 < second.rows < first.rows
    assert second.tables["rates"].inserted == 0
    assert second.tables["rates"].updated == second.rows
    rows = _rows(tmp_settings)
    assert len(rows) == 30, "an upsert must not duplicate rows"
    assert len({(r["rate_date"], r["currency"]) for r in rows}) == 30
    assert all(fx.is_business_day(r["rate_date"]) for r in rows)
    assert {r["_source"] for r in rows} == {"fx"}
    eur = next(r for r in rows if r["rate_date"] == date(2025, 1, 3) and r["currency"] == "EUR")
    assert eur["rate"] == fx.rate(date(2025, 1, 3), "EUR")


def test_next_generation_revises_a_rate_and_inserts_new_days(tmp_settings) -> None:
    _load(tmp_settings, WORLD)
    later = replace(WORLD, generation=2)
    summary = _load(tmp_settings, later)
    new_business_days = sum(
        fx.is_business_day(WORLD.end_date + timedelta(days=d)) for d in range(1, 8)
    )
    assert summary.tables["rates"].inserted == new_business_days * len(CURRENCIES)
    assert summary.tables["rates"].updated > 0
    rows = {(r["rate_date"], r["currency"]): r["rate"] for r in _rows(tmp_settings)}
    revised_day = fx.published_day(WORLD.end_date)
    assert rows[(revised_day, "EUR")] == later.fx_rate(revised_day, "EUR")
    assert rows[(revised_day, "EUR")] != WORLD.fx_rate(revised_day, "EUR")
    assert len(rows) == (10 + new_business_days) * len(CURRENCIES)
