"""``lakehouse diff <table>``: what changed in a table between two of its Delta versions (by
default, the versions the last two builds left), keyed by its unique key (docs/change_audit.md)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import target_dir
from lakehouse.observability import table_changes
from lakehouse.transform import build_selection

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    audit = settings.audit
    try:
        audited = table_changes.audited_in(
            settings,
            args.table,
            # the last successful build's project first: the one the builds compared were made of
            build_selection.state_dir(settings) / "manifest.json",
            target_dir() / "manifest.json",
        )
        ignore = [*audit.ignore_columns, *args.ignore] if not args.no_ignore else []
        examples = audit.examples if args.examples is None else args.examples
        diff = table_changes.diff_versions(
            audited, args.from_version, args.to_version, ignore, examples
        )
    except table_changes.AuditError as exc:
        print(f"diff: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(diff.as_dict(), indent=2))
    else:
        print(render(diff))
    if diff.change_share > audit.alert_share:
        table_changes.warn_over_threshold([diff], audit.alert_share)
    return 0


def render(diff: table_changes.Diff) -> str:
    """The diff as a person reads it: counts, columns, examples."""
    lines = [
        f"{diff.table} (key {', '.join(diff.key)}): version {diff.from_version} -> "
        f"{diff.to_version}",
        f"  rows      {diff.rows_before:>10,} -> {diff.rows_after:,}",
        f"  added     {diff.added:>10,}",
        f"  removed   {diff.removed:>10,}",
        f"  changed   {diff.changed:>10,}   ({diff.change_share:.2%} of the rows before)",
    ]
    if diff.columns_added or diff.columns_removed:
        lines.append(f"  schema    columns added: {', '.join(diff.columns_added) or '-'}; "
                     f"removed: {', '.join(diff.columns_removed) or '-'}")  # fmt: skip
    if diff.columns_retyped:
        lines.append(f"  retyped   {', '.join(diff.columns_retyped)} (compared across the types)")
    if diff.ignored:
        lines.append(f"  ignored   {', '.join(diff.ignored)} (audit.ignore_columns)")
    if diff.columns:
        lines.append("  changed rows per column:")
        width = max(len(c) for c in diff.columns)
        lines += [f"    {c:<{width}}  {n:>10,}" for c, n in diff.columns.items()]
    if diff.examples:
        lines.append("  examples (by key):")
    for example in diff.examples:
        key = ", ".join(f"{k}={v}" for k, v in example["key"].items())
        lines.append(f"    {example['kind']:<8} {key}")
        if example["kind"] == "changed":
            for column, (old, new) in example["columns"].items():
                lines.append(f"               {column}: {_show(old)} -> {_show(new)}")
    return "\n".join(lines)


def _show(value: object) -> str:
    return "NULL" if value is None else json.dumps(value)
