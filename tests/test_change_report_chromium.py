"""The watchdog report's "Changes in gold" section rendered in headless Chromium: the chart's bars
are in the DOM with the rows' counts and heights in proportion to them, the builds over the
threshold are outlined, the top columns and examples read as the rows say, hostile values stay
text (no script runs), and the page asks the network for nothing. The section's PNG is left in
the suite's screenshots folder (``screenshot("watchdog-changes")``).

The rows are ``ops.table_changes`` rows written with delta-rs in the schema the change audit writes
(tests/fast/change_rows.py), in a home of this test's own: no engine, no lake of the suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from change_rows import change, write_changes

from lakehouse.core.config import Settings, load_settings
from lakehouse.observability import watchdog_report

PWN = '<img src=x onerror="window.pwned=1">'


def _rows() -> list[dict]:
    """Eight builds of customer_360 (the 5th and 8th over 20%) and three of orders."""
    rows = []
    for b in range(1, 9):
        big = b in (5, 8)
        rows.append(change(
            b, added=b, removed=b % 3, changed=(30 if big else 3 + b),
            columns={"lifetime_value": 3 + b, "segment": b % 4, "last_order_at": 2},
            examples=[
                {"key": {"customer_id": 40 + b}, "kind": "changed",
                 "columns": {"segment": ["regular", "vip"], "lifetime_value": [120.5, 310.0]}},
                {"key": {"customer_id": 900 + b}, "kind": "added", "columns": {}},
                {"key": {"customer_id": 7}, "kind": "changed", "columns": {"notes": ["", PWN]}},
            ],
        ))  # fmt: skip
    rows += [change(b, table="gold.orders", rows_before=1000, added=40 + b, changed=b,
                    key="order_id", columns={"status": b}) for b in range(6, 9)]  # fmt: skip
    return rows


@pytest.fixture()
def home(settings: Settings, tmp_path: Path, monkeypatch) -> Settings:
    """A lake home of its own holding the rows (the suite's settings still name the screenshots
    folder: ``settings`` is built first)."""
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    mine = load_settings()
    write_changes(mine, _rows())
    return mine


def test_the_change_section_renders_its_bars_in_chromium(home, browser, screenshot) -> None:
    page_file = watchdog_report.write(home)
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    asked: list[str] = []
    page.route("**/*", lambda route: (asked.append(route.request.url), route.continue_())
               if route.request.url.startswith("file:") else (asked.append(route.request.url),
                                                              route.abort()))  # fmt: skip
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(page_file.as_uri())
    section = page.locator("#changes")
    section.scroll_into_view_if_needed()
    section.screenshot(path=str(screenshot("watchdog-changes")))

    assert asked == [page_file.as_uri()], "the page loads nothing but itself"
    assert page.evaluate("window.pwned") is None and dialogs == []
    rows = _rows()
    for table in ("gold.customer_360", "gold.orders"):
        card = section.locator(f'.card[data-table="{table}"]')
        bars = card.locator("svg rect[data-series]").evaluate_all(
            """rects => rects.map(r => ({key: r.dataset.key, series: r.dataset.series,
                value: Number(r.dataset.value), height: r.getBBox().height}))"""
        )
        built = [r for r in rows if r["table"] == table]
        expected = sorted((r["build_id"], kind, r[kind]) for r in built
                          for kind in ("added", "removed", "changed") if r[kind])  # fmt: skip
        assert sorted((b["key"], b["series"], b["value"]) for b in bars) == expected
        # heights in proportion to the counts, one scale per chart (drawn to 0.1 px)
        tallest = max(bars, key=lambda b: b["value"])
        scale = tallest["height"] / tallest["value"]
        assert all(abs(b["height"] - b["value"] * scale) < 0.1 for b in bars), bars
        outlined = card.locator("svg rect.over").evaluate_all("rs => rs.map(r => r.dataset.key)")
        assert outlined == [r["build_id"] for r in built if r["over_threshold"]]

    c360 = section.locator('.card[data-table="gold.customer_360"]')
    recent = c360.locator("table.top-columns.recent tr").all_inner_texts()[1:]
    assert [line.split("\t")[0] for line in recent] == ["lifetime_value", "last_order_at",
                                                        "segment"]  # fmt: skip
    assert recent[0].split("\t")[1] == str(sum(3 + b for b in range(1, 9)))
    examples = c360.locator("table.examples tr").all_inner_texts()[1:]
    assert examples[0].startswith("changed\tcustomer_id=48\t")
    assert 'segment: "regular" → "vip"' in examples[0]
    assert PWN.replace('"', '\\"') in examples[2], "the hostile value is shown as text"
    over = c360.locator("table.over-builds tr").all_inner_texts()[1:]
    assert [line.split("\t")[0] for line in over] == ["build-08", "build-05"], "newest first"
    assert screenshot("watchdog-changes").stat().st_size > 20_000
