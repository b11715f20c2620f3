"""The watchdog report: one static HTML page (inline SVG charts, no scripts, no network) that says
how the platform is doing: freshness per source, volume vs trailing average, data-quality
failures, changes in gold, quarantine growth, run durations and cost.

Everything is read from Delta tables with delta-rs, so the report renders without the engine:
``ops.run_metrics`` (lakehouse/observability/run_metrics.py), ``dq.test_results`` (dbt's on-run-end
hook), ``ops.table_changes`` (the gold change audit, read by lakehouse/observability/watchdog.py)
and the
commit history of every bronze table (as lakehouse/observability/watchdog.py judges it). ``make
report`` and the ``dq_watchdog`` DAG write it to ``$LAKEHOUSE_HOME/reports/watchdog.html``.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from deltalake.exceptions import TableNotFoundError

from ingestion.contracts import QUARANTINE_TABLE
from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.core.storage import delta_table
from lakehouse.observability import run_metrics, watchdog

STEP_COLOURS = {"ingest": "#4c78a8", "dbt": "#f58518", "publish": "#54a24b"}
CHANGE_COLOURS = {"added": "#54a24b", "removed": "#e45756", "changed": "#4c78a8"}
RUNS_SHOWN = 12
TOP_COLUMNS = 8
EXAMPLES_SHOWN = 5
VALUE_CHARS = 60  # an example's value is cut after this many characters
DAYS_SHOWN = 14


def path(settings: Settings) -> Path:
    return settings.home / "reports" / "watchdog.html"


# --- what the report says ------------------------------------------------------------------------


@dataclass(frozen=True)
class Freshness:
    source: str
    last_load: datetime | None
    age_h: float | None
    status: str  # ok | warn | error | never


def freshness(settings: Settings, now: datetime) -> list[Freshness]:
    """Newest bronze commit per source, judged by the `freshness` its dbt source declares."""
    limits = _freshness_limits()
    rows = []
    for source, tables in watchdog.bronze_tables(settings).items():
        times = [at for table in tables for at, _ in watchdog.commits(table)]
        if not times:
            rows.append(Freshness(source, None, None, "never"))
            continue
        last = max(times)
        age = (now - last).total_seconds() / 3600
        warn_h, error_h = limits.get(source, (24.0, 72.0))
        status = "error" if age > error_h else "warn" if age > warn_h else "ok"
        rows.append(Freshness(source, last, age, status))
    return rows


def _freshness_limits() -> dict[str, tuple[float, float]]:
    """(warn, error) hours per bronze dataset from the dbt manifest, when one was compiled."""
    manifest = target_dir() / "manifest.json"  # this process's dbt target (DBT_TARGET_PATH)
    if not manifest.exists():
        return {}
    hours = {"minute": 1 / 60, "hour": 1.0, "day": 24.0}
    limits = {}
    for source in json.loads(manifest.read_text()).get("sources", {}).values():
        fresh = source.get("freshness") or {}
        dataset = (source.get("meta") or {}).get("bronze_dataset") or (
            source.get("source_meta") or {}
        ).get("bronze_dataset")
        warn, error = fresh.get("warn_after") or {}, fresh.get("error_after") or {}
        if dataset and warn.get("count") and error.get("count"):
            limits[dataset] = (warn["count"] * hours[warn["period"]],
                               error["count"] * hours[error["period"]])  # fmt: skip
    return limits


def daily_volume(settings: Settings) -> dict[str, dict[date, int]]:
    """Rows written per day per source (all its bronze data tables), from Delta's history."""
    volume: dict[str, dict[date, int]] = {}
    for source, tables in watchdog.bronze_tables(settings).items():
        days: dict[date, int] = defaultdict(int)
        for table in tables:
            for at, rows in watchdog.commits(table):
                days[at.date()] += rows
        volume[source] = dict(days)
    return volume


def daily_quarantine(settings: Settings) -> dict[str, dict[date, int]]:
    """Rows quarantined per day per source (bronze quarantine tables)."""
    out: dict[str, dict[date, int]] = {}
    for source in watchdog.bronze_tables(settings):
        days: dict[date, int] = defaultdict(int)
        for at, rows in watchdog.commits(settings.bronze / source / QUARANTINE_TABLE):
            days[at.date()] += rows
        out[source] = dict(days)
    return out


def test_results(settings: Settings) -> list[dict[str, Any]]:
    """dq.test_results: every test that warned or failed, per dbt invocation."""
    location = settings.warehouse / "dq.db" / "test_results"
    try:
        return delta_table(location).to_pyarrow_table().to_pylist()
    except TableNotFoundError:
        return []


def runs(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run id: start, wall time, seconds and cost per step, job and error counts."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in metrics:
        grouped[row["run_id"]].append(row)
    out = []
    for run_id, rows in grouped.items():
        start = min(r["started_at"] for r in rows)
        end = max(r["ended_at"] for r in rows)
        seconds: dict[str, float] = defaultdict(float)
        for step in STEP_COLOURS:
            spans = [r for r in rows if r["step"] == step]
            if spans:  # jobs of a step overlap (dbt threads): the step's wall time
                seconds[step] = (max(r["ended_at"] for r in spans)
                                 - min(r["started_at"] for r in spans)).total_seconds()  # fmt: skip
        out.append({
            "run_id": run_id, "started_at": start, "wall_s": (end - start).total_seconds(),
            "seconds": dict(seconds), "jobs": len(rows),
            "errors": sum(r["status"] == "error" for r in rows),
            "compute_cost": sum(r["compute_cost"] or 0 for r in rows),
            "rows_written": sum(r["rows_written"] or 0 for r in rows),
            "currency": rows[0]["currency"],
        })  # fmt: skip
    return sorted(out, key=lambda r: r["started_at"])


# --- rendering ------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value))


def bar_chart(
    labels: list[str],
    series: dict[str, list[float]],
    colours: dict[str, str],
    unit: str = "",
    line: list[float | None] | None = None,
    title: str = "",
    line_label: str = "trailing average",
    highlight: list[bool] | None = None,
    keys: list[str] | None = None,
) -> str:
    """Stacked bars (one stack per label) with an optional line over them, as inline SVG.

    ``highlight`` outlines the stacks to call out (and reddens their label); ``keys`` tags each
    stack's bars with ``data-key`` (a build id, ...) for a reader or a test to find them by."""
    if not labels or not any(v for values in series.values() for v in values):
        return f'<p class="empty">{_e(title)}: no data yet.</p>'
    width, height, pad_l, pad_b, pad_t = 640, 220, 56, 44, 12
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = max([*totals, *(v for v in line or [] if v is not None), 1e-9])
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    step = plot_w / max(len(labels), 1)
    bar_w = max(step * 0.7, 2)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{_e(title)}"><title>{_e(title)}</title>']  # fmt: skip
    for frac in (0, 0.5, 1):
        y = pad_t + plot_h * (1 - frac)
        parts.append(f'<line x1="{pad_l}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'class="grid"/><text x="{pad_l - 6}" y="{y + 4:.1f}" class="axis" '
                     f'text-anchor="end">{_fmt(top * frac)}{unit}</text>')  # fmt: skip
    for i, label in enumerate(labels):
        x = pad_l + i * step + (step - bar_w) / 2
        base = pad_t + plot_h
        key = f' data-key="{_e(keys[i])}"' if keys else ""
        for name, values in series.items():
            h = plot_h * values[i] / top
            if h > 0:
                base -= h
                parts.append(f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" '
                             f'height="{h:.1f}" fill="{colours.get(name, "#888")}" '
                             f'data-series="{_e(name)}" data-value="{_number(values[i])}"{key}>'
                             f"<title>{_e(label)} {_e(name)}: {_fmt(values[i])}{unit}</title>"
                             "</rect>")  # fmt: skip
        marked = bool(highlight and highlight[i])
        if marked:
            stack_h = pad_t + plot_h - base
            parts.append(f'<rect x="{x - 2:.1f}" y="{base - 2:.1f}" width="{bar_w + 4:.1f}" '
                         f'height="{stack_h + 2:.1f}" class="over"{key}/>')  # fmt: skip
        if marked or i % max(len(labels) // 7, 1) == 0:  # at most ~7 labels: never overlap
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - pad_b + 16}" '
                         f'class="axis{" over" if marked else ""}" text-anchor="middle">'
                         f"{_e(label)}</text>")  # fmt: skip
    if line:
        points = [
            f"{pad_l + i * step + step / 2:.1f},{pad_t + plot_h * (1 - v / top):.1f}"
            for i, v in enumerate(line)
            if v is not None
        ]
        if points:
            parts.append(f'<polyline points="{" ".join(points)}" class="trend"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{colours.get(n, "#888")}"></i>{_e(n)}</span>'
        for n in series
    )
    if line:
        legend += f'<span class="key"><i class="trend-key"></i>{_e(line_label)}</span>'
    if highlight and any(highlight):
        legend += '<span class="key"><i class="over-key"></i>over the threshold</span>'
    return f"<figure>{''.join(parts)}<figcaption>{legend}</figcaption></figure>"


def _number(value: float) -> str:
    """A value exactly, for a machine (``data-value``): 1234567, not 1.23e+06."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _fmt(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    if value and value < 1:
        return f"{value:.3g}"
    return f"{value:.0f}"


def _days(now: datetime) -> list[date]:
    return [now.date() - timedelta(days=d) for d in range(DAYS_SHOWN - 1, -1, -1)]


def _volume_section(settings: Settings, now: datetime) -> str:
    conf = settings.orchestration.watchdog
    days = _days(now)
    blocks = []
    for source, daily in daily_volume(settings).items():
        breach, message = watchdog.judge_volume(daily, conf)
        trailing = []
        for d in days:
            window = [daily.get(d - timedelta(days=k), 0) for k in range(1, conf.trailing_days + 1)
                      if d - timedelta(days=k) >= min(daily, default=d)]  # fmt: skip
            trailing.append(sum(window) / len(window) if window else None)
        chart = bar_chart([d.strftime("%m-%d") for d in days],
                          {"rows": [daily.get(d, 0) for d in days]}, {"rows": "#4c78a8"},
                          line=trailing, title=f"{source}: rows loaded per day")  # fmt: skip
        badge = _badge("error" if breach else "ok", "outside tolerance" if breach else "normal")
        blocks.append(f'<div class="card"><h3>{_e(source)} {badge}</h3><p>{_e(message)}</p>'
                      f"{chart}</div>")  # fmt: skip
    return "".join(blocks) or "<p>No bronze table yet.</p>"


def _badge(status: str, text: str | None = None) -> str:
    return f'<span class="badge {status}">{_e(text or status)}</span>'


def render(settings: Settings, now: datetime | None = None) -> str:
    """The whole page."""
    now = now or datetime.now(UTC)
    metrics = run_metrics.read(settings)
    recent = runs(metrics)[-RUNS_SHOWN:]
    fresh = freshness(settings, now)
    return PAGE.format(
        generated=_e(now.strftime("%Y-%m-%d %H:%M:%S UTC")),
        home=_e(settings.home),
        tiles=_tiles(recent, fresh),
        freshness=_freshness_rows(fresh),
        volume=_volume_section(settings, now),
        dq=_dq_section(test_results(settings)),
        changes=changes_section(watchdog.table_changes(settings)),
        quarantine=_quarantine_chart(daily_quarantine(settings), _days(now)),
        runs=_runs_section(metrics, recent),
        cost=_cost_section(metrics, recent),
    )


def _tiles(recent: list[dict[str, Any]], fresh: list[Freshness]) -> str:
    tiles = []
    if recent:
        last = recent[-1]
        tiles += [
            ("Last run", last["started_at"].strftime("%Y-%m-%d %H:%M UTC"), last["run_id"]),
            ("Wall time", f"{last['wall_s']:.0f} s", f"{last['jobs']} jobs"),
            ("Failed jobs", str(last["errors"]), "in the last run"),
            ("Compute cost", f"{last['compute_cost']:.4f} {last['currency']}", "last run"),
        ]
    stale = sum(f.status != "ok" for f in fresh)
    tiles.append(("Stale sources", str(stale), f"of {len(fresh)}"))
    return "".join(
        f'<div class="tile"><div class="label">{_e(a)}</div><div class="value">{_e(b)}</div>'
        f'<div class="sub">{_e(c)}</div></div>'
        for a, b, c in tiles
    )


def _freshness_rows(fresh: list[Freshness]) -> str:
    rows = "".join(
        f"<tr><td>{_e(f.source)}</td><td>{_badge(f.status)}</td>"
        f"<td>{_e(f.last_load.strftime('%Y-%m-%d %H:%M') if f.last_load else '-')}</td>"
        f"<td>{'-' if f.age_h is None else f'{f.age_h:.1f} h'}</td></tr>"
        for f in fresh
    )
    return rows or '<tr><td colspan="4">No bronze table yet.</td></tr>'


def _dq_section(results: list[dict[str, Any]]) -> str:
    """Tests that did not pass per dbt invocation, and the latest invocation's list."""
    recorded = {r["invocation_id"]: r["recorded_at"] for r in results}
    invocations = sorted(recorded, key=lambda inv: recorded[inv])[-RUNS_SHOWN:]
    chart = bar_chart(
        [str(recorded[inv])[5:16] for inv in invocations],
        {status: [sum(r["invocation_id"] == inv and r["status"] == status for r in results)
                  for inv in invocations] for status in ("fail", "warn", "error")},
        {"fail": "#d62728", "warn": "#e8a33d", "error": "#7f1d1d"},
        title="tests that did not pass, per dbt invocation",
    )  # fmt: skip
    latest = [r for r in results if invocations and r["invocation_id"] == invocations[-1]]
    latest.sort(key=lambda r: (r["status"] != "fail", r["test_name"]))
    rows = "".join(
        f"<tr><td>{_badge(_status(r['status']), r['status'])}</td>"
        f'<td class="long">{_e(r["test_name"])}</td><td>{_e(count(r.get("failures")))}</td>'
        f'<td class="long">{_e(r.get("failures_table") or "")}</td></tr>'
        for r in latest
    )
    rows = rows or '<tr><td colspan="4">Every test passed.</td></tr>'
    return (f'<div class="card">{chart}</div><div class="card"><h3>Latest dbt invocation</h3>'
            "<table><tr><th>Status</th><th>Test</th><th>Rows</th><th>Quarantine table</th></tr>"
            f"{rows}</table></div>")  # fmt: skip


def changes_section(rows: list[dict[str, Any]]) -> str:
    """Per gold table (rows of ``ops.table_changes``, oldest first): rows added, removed and
    changed per build (its recent builds, those over the threshold outlined, the threshold as
    changed rows drawn over them), its most changed columns over those builds and in the last
    one, examples of the last build's changes, and the builds over the threshold listed."""
    if not rows:
        return ('<div class="card"><p class="empty">No builds recorded yet: the change audit '
                "writes a row to ops.table_changes per gold table after each build.</p>"
                "</div>")  # fmt: skip
    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_table[str(row.get("table"))].append(row)
    cards = [_change_card(t, builds[-RUNS_SHOWN:]) for t, builds in sorted(by_table.items())]
    return f'<div class="grid2">{"".join(cards)}</div>'


def _build_label(row: dict[str, Any]) -> str:
    at = row.get("recorded_at")
    return at.strftime("%m-%d %H:%M") if isinstance(at, datetime) else str(row.get("build_id"))


def _change_card(table: str, builds: list[dict[str, Any]]) -> str:
    last = builds[-1]
    over = [watchdog.over_threshold(b) for b in builds]
    chart = bar_chart(
        [_build_label(b) for b in builds],
        {kind: [int(b.get(kind) or 0) for b in builds] for kind in CHANGE_COLOURS},
        CHANGE_COLOURS,
        line=[None if b.get("alert_share") is None
              else b["alert_share"] * max(int(b.get("rows_before") or 0), 1) for b in builds],
        line_label="threshold (changed rows that alert)",
        highlight=over, keys=[str(b.get("build_id")) for b in builds],
        title=f"{table}: rows added, removed and changed per build",
    )  # fmt: skip
    badge = _badge("error", "over the threshold") if over[-1] else _badge("ok", "within the limit")
    recent: dict[str, int] = defaultdict(int)
    for b in builds:
        for column, n in b["columns"].items():
            recent[column] += n
    return (
        f'<div class="card" data-table="{_e(table)}"><h3>{_e(table)} {badge}</h3>'
        f"<p>Last build: {_e(watchdog.describe_change(last))}; version "
        f"{_e(last.get('from_version'))} to {_e(last.get('to_version'))}, "
        f"{_e(count(last.get('rows_after')))} rows now, keyed by {_e(last.get('key') or '-')}.</p>"
        f'{chart}<div class="cols">'
        f"{_top_columns(f'Most changed columns, last {len(builds)} builds', recent, 'recent')}"
        f"{_top_columns('Most changed columns, last build', last['columns'], 'last')}</div>"
        f"{_examples(last)}{_over_builds(builds, over)}</div>"
    )


def _top_columns(title: str, counts: dict[str, int], kind: str) -> str:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_COLUMNS]
    rows = "".join(f'<tr><td class="long mono">{_e(c)}</td><td>{n:,}</td></tr>' for c, n in ranked)
    rows = rows or '<tr><td colspan="2">No column changed.</td></tr>'
    return (f'<div><h4>{_e(title)}</h4><table class="top-columns {kind}"><tr><th>Column</th>'
            f"<th>Rows changed</th></tr>{rows}</table></div>")  # fmt: skip


def _short(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def _examples(last: dict[str, Any]) -> str:
    """A few of the last build's changed rows: their key, the kind, each column before/after."""
    rows = []
    for example in last["examples"][:EXAMPLES_SHOWN]:
        key = example.get("key")
        key_text = (", ".join(f"{k}={_short(v)}" for k, v in key.items())
                    if isinstance(key, dict) else _short(key))  # fmt: skip
        columns = example.get("columns")
        changes = "; ".join(
            f"{c}: {_short(v[0])} → {_short(v[1])}"
            if isinstance(v, list) and len(v) == 2 else f"{c}: {_short(v)}"
            for c, v in (columns.items() if isinstance(columns, dict) else [])
        )  # fmt: skip
        rows.append(f'<tr><td>{_e(example.get("kind", "?"))}</td><td class="long mono key">'
                    f'{_e(key_text)}</td><td class="long mono">{_e(changes or "-")}</td>'
                    "</tr>")  # fmt: skip
    body = "".join(rows) or '<tr><td colspan="3">No example recorded.</td></tr>'
    return ('<h4>Examples from the last build</h4><table class="examples"><tr><th>Kind</th>'
            f"<th>Key</th><th>Columns (before → after)</th></tr>{body}</table>")  # fmt: skip


def _over_builds(builds: list[dict[str, Any]], over: list[bool]) -> str:
    flagged = [b for b, o in zip(builds, over, strict=True) if o]
    if not flagged:
        return f"<p>No build of the last {len(builds)} went over the threshold.</p>"
    rows = "".join(
        f'<tr class="over"><td class="long mono">{_e(b.get("build_id"))}</td>'
        f"<td>{_e(_build_label(b))}</td><td>{(b.get('change_share') or 0):.1%}</td>"
        f"<td>{'-' if b.get('alert_share') is None else format(b['alert_share'], '.1%')}</td></tr>"
        for b in reversed(flagged)
    )
    return ('<h4>Builds over the threshold</h4><table class="over-builds"><tr><th>Build</th>'
            "<th>Recorded (UTC)</th><th>Changed</th><th>Threshold</th></tr>"
            f"{rows}</table>")  # fmt: skip


def _quarantine_chart(quarantine: dict[str, dict[date, int]], days: list[date]) -> str:
    palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"]
    return bar_chart(
        [d.strftime("%m-%d") for d in days],
        {source: [daily.get(d, 0) for d in days] for source, daily in quarantine.items()},
        dict(zip(quarantine, palette, strict=False)),
        title="rows quarantined per day and source",
    )


def _runs_section(metrics: list[dict[str, Any]], recent: list[dict[str, Any]]) -> str:
    chart = bar_chart(
        [r["started_at"].strftime("%m-%d %H:%M") for r in recent],
        {s: [r["seconds"].get(s, 0.0) for r in recent] for s in STEP_COLOURS},
        STEP_COLOURS, unit=" s", title="wall time per run and step",
    )  # fmt: skip
    last = [m for m in metrics if recent and m["run_id"] == recent[-1]["run_id"]]
    rows = "".join(
        f'<tr><td>{_e(m["step"])}</td><td class="long">{_e(m["job"])}</td>'
        f"<td>{_badge(_status(m['status']), m['status'])}</td><td>{m['duration_s']:.1f} s</td>"
        f"<td>{_e(count(m['rows_written']))}</td><td>{_e(count(m['rows_quarantined']))}</td>"
        f"<td>{(m['compute_cost'] or 0):.5f}</td></tr>"
        for m in sorted(last, key=lambda m: -m["duration_s"])[:10]
    )
    rows = rows or '<tr><td colspan="7">No run recorded yet.</td></tr>'
    return (f'<div class="card">{chart}</div><div class="card"><h3>Slowest jobs of the last '
            "run</h3><table><tr><th>Step</th><th>Job</th><th>Status</th><th>Duration</th>"
            f"<th>Rows written</th><th>Quarantined</th><th>Compute cost</th></tr>{rows}</table>"
            "</div>")  # fmt: skip


def _cost_section(metrics: list[dict[str, Any]], recent: list[dict[str, Any]]) -> str:
    chart = bar_chart(
        [r["started_at"].strftime("%m-%d %H:%M") for r in recent],
        {s: [sum(m["compute_cost"] or 0 for m in metrics
                 if m["run_id"] == r["run_id"] and m["step"] == s) for r in recent]
         for s in STEP_COLOURS},
        STEP_COLOURS, title="compute cost per run and step",
    )  # fmt: skip
    newest = {m["job"]: m for m in metrics if m["bytes_stored"] is not None}  # oldest first
    stored_gb = sum(m["bytes_stored"] for m in newest.values()) / 1e9
    per_month = sum(m["storage_cost_month"] or 0 for m in newest.values())
    currency = recent[-1]["currency"] if recent else ""
    return (
        f"{chart}<p>Storage: {stored_gb:.4f} GB in {len(newest)} tables, "
        f"{per_month:.5f} {_e(currency)} per month.</p>"
    )


def _status(status: str) -> str:
    return {"success": "ok", "pass": "ok", "warn": "warn"}.get(status, "error")


def count(value: int | None) -> str:
    """A row count for people: thousands separated, "-" when unknown."""
    return "-" if value is None else f"{value:,}"


def write(settings: Settings, now: datetime | None = None) -> Path:
    out = path(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(settings, now))
    return out


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Lakehouse watchdog report</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }}
header {{ background: #24292f; color: #fff; padding: 14px 24px; }}
header h1 {{ margin: 0; font-size: 20px; }} header p {{ margin: 2px 0 0; color: #c9d1d9; }}
main {{ padding: 16px 24px; max-width: 1400px; }}
section {{ margin-bottom: 22px; }} h2 {{ font-size: 17px; margin: 18px 0 8px; }}
.tiles {{ display: flex; gap: 12px; flex-wrap: wrap; }}
.tile {{ background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 14px;
  min-width: 150px; }}
.tile .label {{ color: #57606a; font-size: 12px; }} .tile .value {{ font-size: 20px; }}
.tile .sub {{ color: #57606a; font-size: 11px; max-width: 260px; overflow-wrap: anywhere; }}
.grid2 {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }}
.card {{ background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; }}
.card h3 {{ margin: 4px 0; font-size: 15px; }} .card p {{ margin: 2px 0 6px; color: #57606a; }}
table {{ border-collapse: collapse; background: #fff; font-size: 13px; }}
td, th {{ border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; }}
td.long {{ overflow-wrap: anywhere; }}
.card table {{ width: 100%; }} .empty {{ color: #57606a; font-style: italic; }}
th {{ background: #eaeef2; }}
.badge {{ border-radius: 10px; padding: 1px 8px; font-size: 12px; color: #fff;
  white-space: nowrap; }}
.ok {{ background: #1a7f37; }} .warn {{ background: #bf8700; }}
.mono {{ font-family: ui-monospace, monospace; }}
.error, .never {{ background: #cf222e; }}
svg.chart {{ width: 100%; max-width: 640px; height: auto; }}
svg .grid {{ stroke: #d0d7de; }} svg .axis {{ font-size: 10px; fill: #57606a; }}
svg .trend {{ fill: none; stroke: #cf222e; stroke-width: 2; }}
svg rect.over {{ fill: none; stroke: #cf222e; stroke-width: 2; stroke-dasharray: 4 2; }}
svg text.over {{ fill: #cf222e; font-weight: bold; }}
tr.over td {{ background: #ffebe9; }} td.key {{ min-width: 140px; }}
.cols {{ display: flex; gap: 12px; flex-wrap: wrap; }}
.cols > div {{ flex: 1 1 200px; }} .cols h4 {{ margin: 6px 0 4px; font-size: 13px; }}
figure {{ margin: 0; }} figcaption {{ font-size: 12px; color: #57606a; }}
.key {{ margin-right: 12px; }} .key i {{ display: inline-block; width: 10px; height: 10px;
  margin-right: 4px; }} .trend-key {{ background: #cf222e; height: 2px !important; }}
.over-key {{ border: 2px dashed #cf222e; box-sizing: border-box; }}
</style></head>
<body>
<header><h1>Lakehouse watchdog report</h1>
<p>Generated {generated} from {home}</p></header>
<main>
<section class="tiles">{tiles}</section>
<section id="freshness"><h2>Freshness per source</h2>
<table><tr><th>Source</th><th>Status</th><th>Last load (UTC)</th><th>Age</th></tr>
{freshness}</table></section>
<section id="volume"><h2>Volume vs trailing average</h2><div class="grid2">{volume}</div>
</section>
<section id="dq"><h2>Data-quality failures</h2><div class="grid2">{dq}</div></section>
<section id="changes"><h2>Changes in gold</h2>{changes}</section>
<section id="quarantine"><h2>Quarantine growth</h2><div class="card">{quarantine}</div>
</section>
<section id="runs"><h2>Run durations</h2><div class="grid2">{runs}</div></section>
<section id="cost"><h2>Cost</h2><div class="card">{cost}</div></section>
</main></body></html>
"""
