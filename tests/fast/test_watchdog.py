"""The dq_watchdog's volume and quarantine judgements, on real Delta tables where it matters."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.core.config import Settings, WatchdogConfig
from lakehouse.observability import watchdog

CONF = WatchdogConfig(volume_tolerance=0.5, trailing_days=7, min_history_days=3)
DAY = date(2026, 3, 10)


def _daily(*rows: int) -> dict[date, int]:
    """Rows per day, oldest first, ending on DAY."""
    return {DAY - timedelta(days=len(rows) - 1 - i): n for i, n in enumerate(rows)}


def test_volume_within_tolerance_passes() -> None:
    breach, message = watchdog.judge_volume(_daily(100, 110, 90, 100, 120), CONF)
    assert not breach
    assert "120 rows on 2026-03-10 vs a trailing average of 100 (+20%" in message


def test_a_drop_or_a_spike_beyond_tolerance_breaches() -> None:
    assert watchdog.judge_volume(_daily(100, 100, 100, 100, 40), CONF)[0]
    assert watchdog.judge_volume(_daily(100, 100, 100, 100, 151), CONF)[0]


def test_a_missed_load_day_counts_as_zero() -> None:
    """Two loads of 100 in a four-day window average 50: today's 100 is +100%, a breach."""
    daily = {DAY - timedelta(days=4): 100, DAY - timedelta(days=1): 100, DAY: 100}
    breach, message = watchdog.judge_volume(daily, CONF)
    assert breach
    assert "trailing average of 50" in message


def test_short_history_is_reported_not_judged() -> None:
    breach, message = watchdog.judge_volume(_daily(100, 5), CONF)
    assert not breach
    assert "1 day(s) of history, not judged" in message


def _write(path, rows: int, mode: str = "append") -> None:
    write_deltalake(str(path), pa.table({"id": pa.array(range(rows), pa.int64())}), mode=mode)


def test_volume_reads_rows_per_load_from_delta_history(tmp_settings: Settings) -> None:
    """A replaced table keeps only its last load's rows, but its history has every load."""
    table = tmp_settings.bronze_dir / "snowflake" / "customers"
    _write(table, 30)
    _write(table, 50, mode="overwrite")
    (finding,) = watchdog.volume(tmp_settings)
    assert finding.subject == "bronze_snowflake.customers"
    assert finding.message.startswith("80 rows on ")


def test_quarantine_share_over_the_limit_breaches(tmp_settings: Settings) -> None:
    source = tmp_settings.bronze_dir / "crm"
    _write(source / "contacts", 90)
    _write(source / "quarantine", 10)
    strict = tmp_settings.orchestration.watchdog.model_copy(update={"quarantine_max_share": 0.05})
    (finding,) = watchdog.quarantine_growth(tmp_settings, strict)
    assert finding.breach
    assert finding.subject == "bronze_crm.quarantine"
    assert "10 of 100 rows read in the last 1 h quarantined (10.0%, limit 5.0%)" in finding.message
    lenient = strict.model_copy(update={"quarantine_max_share": 0.2})
    assert not watchdog.quarantine_growth(tmp_settings, lenient)[0].breach
