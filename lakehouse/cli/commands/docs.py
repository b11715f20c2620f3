"""``lakehouse docs``: generate (and serve) the docs site: dbt docs, lineage page, registry."""

from __future__ import annotations

import argparse
import logging

from lakehouse.core.config import Settings
from lakehouse.observability.lineage import site
from lakehouse.pipeline import docs_site
from lakehouse.stack import engine

log = logging.getLogger(__name__)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.lineage_only:
        written = docs_site.write_lineage(settings)
        log.info(f"lineage page {written.page}, registry {written.registry}")
    else:
        with engine.running(settings):
            out = docs_site.generate(settings)
        log.info(f"docs site in {out} (static: {out / 'static_index.html'})")
    if args.serve:
        site.serve(settings, args.port)
    return 0
