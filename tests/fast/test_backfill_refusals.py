"""A backfill that cannot run as asked is refused before it touches anything, saying why and
what to do instead: an unknown source or mode, a mode the source does not support, an empty
window, a window reaching into the future, an id range given to a source read by time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from lakehouse.core.config import Settings
from lakehouse.pipeline import backfill

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)


def test_sources_refuse_the_modes_their_strategy_does_not_allow(settings: Settings) -> None:
    with pytest.raises(backfill.BackfillError, match="replaced whole"):
        backfill.backfill(settings, "snowflake", date(2025, 1, 2), date(2025, 1, 2))
    with pytest.raises(backfill.BackfillError, match=r"ends .* before it starts"):
        backfill.backfill(settings, "fx", date(2025, 1, 3), date(2025, 1, 2))
    refused = [("crm", "reload"), ("crm", "ids"), ("kafka", "downstream-only"),
               ("fx", "ids"), ("redshift", "reload"), ("snowflake", "ids")]  # fmt: skip
    for source, mode in refused:
        with pytest.raises(backfill.BackfillError, match=f"{source} does not support backfill "
                           f"mode '{mode}'"):  # fmt: skip
            backfill.validate(source, 1, 2, mode=mode, now=NOW)


def test_unknown_sources_and_modes_are_refused_naming_the_choices() -> None:
    with pytest.raises(backfill.BackfillError, match=r"not a source.*snowflake, crm"):
        backfill.validate("salesforce", date(2025, 1, 1), date(2025, 1, 2))
    with pytest.raises(backfill.BackfillError, match="unknown backfill mode 'replay'"):
        backfill.validate("kafka", date(2025, 1, 1), date(2025, 1, 2), mode="replay")


@pytest.mark.parametrize("source", ["crm", "redshift", "kafka"])
def test_a_time_window_must_be_half_open_and_in_the_past(source: str) -> None:
    start = datetime(2026, 1, 9, tzinfo=UTC)
    for end in (start, start - timedelta(seconds=1)):
        with pytest.raises(backfill.BackfillError, match="is empty: --from must be before --to"):
            backfill.validate(source, start, end, now=NOW)
    with pytest.raises(backfill.BackfillError, match="ends in the future"):
        backfill.validate(source, start, NOW + timedelta(seconds=1), now=NOW)
    with pytest.raises(backfill.BackfillError, match="needs both --from and --to"):
        backfill.validate(source, start, None, now=NOW)
    with pytest.raises(backfill.BackfillError, match="is no ISO-8601"):
        backfill.validate(source, "yesterday", "2026-01-09", now=NOW)
    # a day is its midnight, a time without a zone is UTC, a zoned one is converted to UTC
    asked = backfill.validate(source, "2026-01-08", "2026-01-09T01:00:00+02:00", now=NOW)
    assert (asked.start, asked.end) == (datetime(2026, 1, 8, tzinfo=UTC),
                                        datetime(2026, 1, 8, 23, tzinfo=UTC))  # fmt: skip
    assert backfill.validate(source, start, NOW, now=NOW).end == NOW  # up to now is complete


def test_fx_days_include_both_ends_and_refuse_the_future_and_times() -> None:
    asked = backfill.validate("fx", "2026-01-08", "2026-01-08", now=NOW)
    assert (asked.by, asked.start, asked.end) == ("days", date(2026, 1, 8), date(2026, 1, 8))
    with pytest.raises(backfill.BackfillError, match="reaches into the future"):
        backfill.validate("fx", "2026-01-08", "2026-01-11", now=NOW)
    with pytest.raises(backfill.BackfillError, match="reloaded by whole days"):
        backfill.validate("fx", datetime(2026, 1, 8, 6), date(2026, 1, 9), now=NOW)
    with pytest.raises(backfill.BackfillError, match="is no date"):
        backfill.validate("fx", "2026-01-08T06:00", "2026-01-09", now=NOW)


def test_id_ranges_are_redshifts_half_open_and_non_negative() -> None:
    asked = backfill.validate("redshift", 10, "20", mode="ids", tables=["sessions"])
    assert (asked.by, asked.start, asked.end, asked.tables) == ("ids", 10, 20, ("sessions",))
    for low, high, said in [(5, 5, "is empty"), (9, 3, "is empty"), (-1, 3, "negative"),
                            ("a", 3, "no row id"), (True, 3, "no row id")]:  # fmt: skip
        with pytest.raises(backfill.BackfillError, match=said):
            backfill.validate("redshift", low, high, mode="ids")
    with pytest.raises(backfill.BackfillError, match="needs --from-id and --to-id"):
        backfill.validate("redshift", 1, None, mode="ids")


def test_whole_reloads_take_no_window_and_tables_only_where_loaded_by_name(
    settings: Settings,
) -> None:
    assert backfill.validate("snowflake", mode="reload").start is None
    with pytest.raises(backfill.BackfillError, match="reload takes no window"):
        backfill.validate("snowflake", date(2025, 1, 1), date(2025, 1, 2), mode="reload")
    with pytest.raises(backfill.BackfillError, match="crm takes no --table"):
        backfill.validate("crm", "2025-01-01", "2025-01-02", tables=["contacts"], now=NOW)
    asked = backfill.validate("snowflake", mode="downstream-only", tables=["orders", "nope"])
    with pytest.raises(backfill.BackfillError, match="snowflake does not load nope"):
        backfill.configured_tables(settings, asked)
    every = backfill.validate("snowflake", mode="reload")
    assert backfill.configured_tables(settings, every) == settings.sources.snowflake.tables
