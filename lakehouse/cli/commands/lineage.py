"""``lakehouse lineage <dataset> <column>``: where a column comes from, down to the sources."""

from __future__ import annotations

import argparse
import sys

from lakehouse.core.config import Settings
from lakehouse.observability.lineage import graph, site


def run(settings: Settings, args: argparse.Namespace) -> int:
    lineage = graph.load(site.lineage_dir(settings))
    try:
        node = lineage.find(args.dataset)
    except KeyError as exc:
        print(f"lineage: {exc.args[0]} (run the pipeline first?)", file=sys.stderr)
        return 1
    if args.column not in node.fields:
        print(
            f"lineage: {args.dataset} has no column {args.column!r}; it has "
            f"{', '.join(node.fields)}",
            file=sys.stderr,
        )
        return 1
    show(lineage.trace(node, args.column), 0)
    return 0


def show(trace: graph.Trace, depth: int) -> None:
    """One line per dataset and column, each input indented under what it feeds."""
    system = f"  (from {trace.dataset.system})" if trace.dataset.layer == "source" else ""
    print(f"{'  ' * depth}{trace.dataset.layer:<9} {trace.dataset.id.name}.{trace.field}{system}")
    for child in trace.inputs:
        show(child, depth + 1)
