"""Issue 16's targets, in one place: what each measures, its limit, and how a value is judged.

The limits are set for scale 1 on 2 cores. At another scale the bench still prints PASS/FAIL
against the same limits (so a small run shows the shape), but says the limits are scale 1's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One target: ``key`` names the measured value it judges (see harness.Measured)."""

    key: str
    what: str
    limit: float
    unit: str  # "s", "x" (a ratio) or "%" (a share, stored as a fraction)
    at_least: bool = False  # True: the value must reach the limit; False: stay under it


@dataclass(frozen=True)
class Verdict:
    target: Target
    value: float | None
    note: str = ""  # why there is no value: "failed", "not measured (TESTS=1)"

    @property
    def outcome(self) -> str:
        if self.value is None:
            return self.note or "not measured"
        ok = self.value >= self.target.limit if self.target.at_least else (
            self.value <= self.target.limit
        )  # fmt: skip
        return "PASS" if ok else "FAIL"


TARGETS: tuple[Target, ...] = (
    Target("dbt_build_warm_s", "whole `dbt build`, warm (median)", 30, "s"),
    Target("platform_build_noop_s", "platform build with nothing new (`lakehouse build`)", 10, "s"),
    Target("customer_360_warm_s", "`dbt build --select customer_360`, warm (median)", 5, "s"),
    Target("first_build_ratio", "first `dbt build` after the engine starts / warm", 1.3, "x"),
    Target("generation_2_build_share", "build after generation 2 / warm full build", 0.30, "%"),
    Target("kafka_share", "Kafka to bronze / bare pipeline, same messages", 0.5, "%", True),
    Target("make_run_s", "`make run` from an empty lake, without emulator staging", 300, "s"),
    Target("cosmos_ratio", "Cosmos build_analytics producer / CLI `lakehouse build`", 1.2, "x"),
    Target("make_test_s", "`make test` on a clean clone", 15 * 60, "s"),
)


def evaluate(values: dict[str, float | None], notes: dict[str, str]) -> list[Verdict]:
    """A verdict per target, in TARGETS order; a missing value carries its note."""
    return [Verdict(t, values.get(t.key), notes.get(t.key, "")) for t in TARGETS]


def show(value: float | None, unit: str) -> str:
    """A value as the table prints it: seconds with one decimal, ratios as 1.23x, shares as %."""
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value * 100:.0f} %"
    if unit == "n":
        return f"{value:,.0f}"
    if unit == "rows/s":
        return f"{value:,.0f} rows/s"
    return f"{value:.1f} s"


def limit_text(target: Target) -> str:
    return ("≥ " if target.at_least else "≤ ") + show(target.limit, target.unit)
