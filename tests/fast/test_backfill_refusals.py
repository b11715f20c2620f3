"""A backfill that cannot be done by date is refused before it touches anything, saying what to
do instead.
"""

from __future__ import annotations

from datetime import date

import pytest

from lakehouse.core.config import Settings
from lakehouse.pipeline import backfill


def test_sources_without_a_date_range_say_what_to_do_instead(settings: Settings) -> None:
    with pytest.raises(backfill.BackfillError, match="replay it instead"):
        backfill.backfill(settings, "kafka", date(2025, 1, 2), date(2025, 1, 2))
    with pytest.raises(backfill.BackfillError, match="replaced whole"):
        backfill.backfill(settings, "snowflake", date(2025, 1, 2), date(2025, 1, 2))
    with pytest.raises(backfill.BackfillError, match=r"ends .* before it starts"):
        backfill.backfill(settings, "fx", date(2025, 1, 3), date(2025, 1, 2))
