"""Daily FX reference rates, published on business days only, like a central bank's feed.

Weekends have no rate on purpose: downstream models must carry the last known rate forward
(an as-of join), which is the behaviour a real rates feed forces on a lakehouse.
"""

from __future__ import annotations

import hashlib
import math
from datetime import date, timedelta

# Units of the quote currency per 1 USD, roughly realistic, so amounts look plausible.
ANCHOR_RATES: dict[str, float] = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.0,
    "CHF": 0.88,
    "CAD": 1.36,
    "AUD": 1.52,
    "SEK": 10.6,
    "BRL": 5.0,
    "INR": 83.0,
}


def _unit(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) derived from the parts (no global RNG state)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_business_day(day: date) -> bool:
    return day.weekday() < 5


def rate(day: date, quote: str, base: str = "USD", seed: int = 42) -> float:
    """Units of ``quote`` per 1 ``base`` on ``day``: a smooth wobble around the anchor rate."""
    if quote == base:
        return 1.0
    if base != "USD":
        return round(rate(day, quote, "USD", seed) / rate(day, base, "USD", seed), 6)
    anchor = ANCHOR_RATES[quote]
    t = day.toordinal()
    drift = 0.03 * math.sin(t / 37 + _unit(seed, quote) * 6.28)
    noise = 0.004 * (_unit(seed, quote, t) - 0.5)
    return round(anchor * (1 + drift + noise), 6)


def published_day(day: date) -> date:
    """The business day whose rates a request for ``day`` returns (the last one on or before)."""
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day


def daily_rates(day: date, currencies: list[str], base: str = "USD", seed: int = 42) -> dict:
    """The payload of one daily request, in the shape of public daily-rates APIs."""
    effective = published_day(day)
    return {
        "amount": 1.0,
        "base": base,
        "date": effective.isoformat(),
        "rates": {c: rate(effective, c, base, seed) for c in currencies if c != base},
    }
