"""The watchdog report's "Changes in gold" section and the watchdog's reading of
``ops.table_changes``, from rows written with delta-rs in the schema the change audit writes
(tests/fast/change_rows.py). The chart is read back from the page's SVG (each bar carries its
series and exact value) and compared with the rows; hostile names and values must come out as
text. (tests/test_change_report_chromium.py renders the same section in Chromium.)"""

from __future__ import annotations

import html
import itertools
import json
import re
from collections import Counter

import pytest
from change_rows import SCHEMA, change, write_changes

from lakehouse.core.config import Settings
from lakehouse.core.storage import write_delta
from lakehouse.observability import watchdog, watchdog_report

HOSTILE = '<script>alert("x")</script>'
BAR = re.compile(r'<rect [^>]*data-series="(\w+)" data-value="([^"]+)" data-key="([^"]*)"')


def _section(page: str) -> str:
    match = re.search(r'<section id="changes".*?</section>', page, re.S)
    assert match, "no changes section"
    return match.group(0)


def _card(section: str, table: str) -> str:
    match = re.search(rf'<div class="card" data-table="{re.escape(table)}">.*?(?=<div class="card"|'
                      r"</div></section>)", section, re.S)  # fmt: skip
    assert match, f"no card for {table}"
    return match.group(0)


def _bars(card: str) -> dict[str, dict[str, int]]:
    """Build id -> series -> value, as drawn."""
    bars: dict[str, dict[str, int]] = {}
    for series, value, key in BAR.findall(card):
        bars.setdefault(html.unescape(key), {})[series] = int(value)
    return bars


def _builds(n: int) -> list[dict]:
    """n builds of customer_360 with varying changes; builds 3 and 7 are over 20%."""
    rows = []
    for b in range(1, n + 1):
        big = b in (3, 7)
        columns = {"lifetime_value": b, "segment": 2 * (b % 2), "email": 1}
        rows.append(change(b, added=b % 3, removed=b % 2, changed=25 if big else b,
                           columns=columns))  # fmt: skip
    return rows


@pytest.fixture()
def builds(tmp_settings: Settings) -> Settings:
    write_changes(tmp_settings, _builds(14))
    write_changes(tmp_settings, [
        change(14, table="gold.fx_rates_daily", rows_before=400, changed=4, added=2,
               columns={"rate": 4}),
    ])  # fmt: skip
    return tmp_settings


def test_the_chart_draws_each_recent_build_s_added_removed_and_changed_rows(
    builds: Settings,
) -> None:
    card = _card(_section(watchdog_report.render(builds)), "gold.customer_360")
    expected = {r["build_id"]: {k: r[k] for k in ("added", "removed", "changed") if r[k]}
                for r in _builds(14)[-watchdog_report.RUNS_SHOWN :]}  # fmt: skip
    assert _bars(card) == expected
    assert "build-01" not in card and "build-02" not in card, "only the recent builds"
    # stacked: the three series share the build's x and sit on top of one another
    stack = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"[^>]*'
                       r'data-series="\w+" data-value="\d+" data-key="build-07"', card)  # fmt: skip
    assert len({x for x, _, _ in stack}) == 1 and len(stack) == 3
    bars = sorted((float(y), float(h)) for _, y, h in stack)
    assert all(abs(y1 + h1 - y2) < 0.2 for (y1, h1), (y2, _) in itertools.pairwise(bars))


def test_builds_over_the_threshold_are_outlined_and_listed(builds: Settings) -> None:
    card = _card(_section(watchdog_report.render(builds)), "gold.customer_360")
    outlined = re.findall(r'<rect [^>]*class="over" data-key="([^"]+)"', card)
    assert outlined == ["build-03", "build-07"]
    listed = re.findall(r'<tr class="over"><td class="long mono">([^<]+)</td>', card)
    assert listed == ["build-07", "build-03"], "newest first"
    assert "within the limit" in card  # the last build (14) is under
    fx = _card(_section(watchdog_report.render(builds)), "gold.fx_rates_daily")
    assert 'class="over"' not in fx and "No build of the last 1 went over" in fx


def test_top_columns_rank_the_recent_builds_and_the_last_build(builds: Settings) -> None:
    card = _card(_section(watchdog_report.render(builds)), "gold.customer_360")
    recent_rows = _builds(14)[-watchdog_report.RUNS_SHOWN :]
    totals: Counter[str] = Counter()
    for r in recent_rows:
        totals.update(json.loads(r["columns"]))
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))

    def table(kind: str) -> list[tuple[str, int]]:
        body = re.search(rf'<table class="top-columns {kind}">(.*?)</table>', card, re.S)
        assert body, kind
        cells = re.findall(r'<td class="long mono">([^<]+)</td><td>([\d,]+)</td>', body.group(1))
        return [(c, int(n.replace(",", ""))) for c, n in cells]

    assert table("recent") == ranked  # lifetime_value 102, segment 12, email 12 (name breaks ties)
    assert table("last") == [("lifetime_value", 14), ("email", 1)]  # segment: 0 rows changed


def test_examples_of_the_last_build_show_key_kind_and_before_after(tmp_settings: Settings) -> None:
    examples = [
        {"key": {"customer_id": 7}, "kind": "changed", "columns": {"segment": ["new", "vip"]}},
        {"key": {"customer_id": 8}, "kind": "added", "columns": {}},
        {"key": {"customer_id": 9}, "kind": "removed", "columns": {}},
    ] * 3
    write_changes(tmp_settings, [change(1, changed=1, added=1, removed=1, examples=examples)])
    section = _section(watchdog_report.render(tmp_settings))
    rows = re.findall(r"<tr><td>(\w+)</td><td class=\"long mono key\">([^<]+)</td>"
                      r'<td class="long mono">([^<]+)</td></tr>', section)  # fmt: skip
    assert len(rows) == watchdog_report.EXAMPLES_SHOWN
    assert rows[0] == ("changed", "customer_id=7", html.escape('segment: "new" → "vip"'))
    assert rows[1] == ("added", "customer_id=8", "-")


def test_hostile_names_and_values_come_out_as_text(tmp_settings: Settings) -> None:
    write_changes(tmp_settings, [change(
        1, table=f"gold.{HOSTILE}", build_id=f'b"><img src=x onerror=alert(1)>{HOSTILE}',
        key=HOSTILE, changed=40, columns={HOSTILE: 40, "ok": 1},
        examples=[{"key": {HOSTILE: HOSTILE}, "kind": HOSTILE,
                   "columns": {HOSTILE: [HOSTILE, "</td></tr></table><script>x()</script>"]}}],
    )])  # fmt: skip
    page = watchdog_report.render(tmp_settings)
    section = _section(page)
    assert "<script" not in page and "<img" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in section
    # the drawn values and the highlight survive the escaping
    assert [int(v) for _, v, _ in BAR.findall(section)] == [40]
    assert len(re.findall(r'<rect [^>]*class="over"', section)) == 1
    assert page.count("<section") == page.count("</section>"), "no element was closed early"


def test_values_are_cut_short_and_bad_json_reads_as_empty(tmp_settings: Settings) -> None:
    write_changes(tmp_settings, [
        change(1, changed=2, columns="{not json", examples='["a", 3, null]'),
        change(2, changed=1, columns=json.dumps({"a": "many", "b": 2, "c": 0}), examples="{}"),
    ])  # fmt: skip
    rows = watchdog.table_changes(tmp_settings)
    assert [r["columns"] for r in rows] == [{}, {"b": 2}]
    assert [r["examples"] for r in rows] == [[], []]
    assert "No example recorded." in _section(watchdog_report.render(tmp_settings))
    write_changes(tmp_settings, [
        change(3, changed=1, examples=[{"key": {"id": 1}, "kind": "changed",
                                        "columns": {"notes": ["x" * 500, "y" * 500]}}]),
    ])  # fmt: skip
    page = watchdog_report.render(tmp_settings)
    assert "x" * watchdog_report.VALUE_CHARS not in page and "x" * 50 + "…" in page


def test_no_table_or_an_empty_table_says_no_builds_are_recorded_yet(
    tmp_settings: Settings,
) -> None:
    assert watchdog.table_changes(tmp_settings) == []
    assert "No builds recorded yet" in _section(watchdog_report.render(tmp_settings))
    path = watchdog.changes_path(tmp_settings)
    path.mkdir()
    write_delta(path, SCHEMA.empty_table())
    assert "No builds recorded yet" in _section(watchdog_report.render(tmp_settings))
    assert watchdog.gold_changes(tmp_settings) == []


def test_rows_are_read_oldest_build_first_whatever_the_write_order(tmp_settings: Settings) -> None:
    write_changes(tmp_settings, [change(3), change(1)])
    write_changes(tmp_settings, [change(2)])
    assert [r["build_id"] for r in watchdog.table_changes(tmp_settings)] == [
        "build-01", "build-02", "build-03"
    ]  # fmt: skip


def test_a_finding_per_build_over_the_threshold_raised_once(tmp_settings: Settings) -> None:
    write_changes(tmp_settings, [
        change(1, changed=50), change(2, changed=5), change(3, added=30),
        change(1, table="gold.orders", changed=1),
    ])  # fmt: skip
    first = watchdog.gold_changes(tmp_settings)
    assert [(f.subject, f.breach) for f in first] == [
        ("gold.customer_360", True), ("gold.customer_360", True), ("gold.orders", False),
    ]  # fmt: skip
    assert "build build-01 (50.0%" in first[0].message and "build build-03" in first[1].message
    again = watchdog.gold_changes(tmp_settings)
    assert [(f.subject, f.breach) for f in again] == [
        ("gold.customer_360", False), ("gold.orders", False),
    ]  # fmt: skip
    assert "alerted before" in again[0].message  # the last build, over, is not raised again
    assert watchdog.alerted(tmp_settings) == {("build-01", "gold.customer_360"),
                                              ("build-03", "gold.customer_360")}  # fmt: skip


def test_the_row_s_own_verdict_decides_and_a_first_build_never_alerts(
    tmp_settings: Settings,
) -> None:
    write_changes(tmp_settings, [
        change(1, added=100, rows_before=0, from_version=None),  # the table's first build
        change(2, changed=10, alert_share=0.05),  # 10% over its own 5%
        change(3, changed=10, over_threshold=False),  # the audit said no: believed
    ])  # fmt: skip
    breaches = [f for f in watchdog.gold_changes(tmp_settings, remember=False) if f.breach]
    assert [f.message.split(" (")[0] for f in breaches] == [
        "10 of 100 rows changed in build build-02"
    ]
    assert "limit 5.0%" in breaches[0].message
