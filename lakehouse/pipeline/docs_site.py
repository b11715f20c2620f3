"""The docs site generated whole: dbt's docs, then the lineage page and the dataset registry.

It runs dbt (the catalog comes from the engine) and names the warehouses' served tables (the
publish layer), so it sits above both; the observability layer only renders what it is given
(lakehouse/observability/lineage/site.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import DBT_PROJECT_DIR
from lakehouse.observability.lineage import site
from lakehouse.publish.publisher import served
from lakehouse.transform import catalog_stats
from lakehouse.transform.dbt_cli import dbt


def write_lineage(settings: Settings) -> site.LineagePage:
    """The lineage page and the registry, from the event files and the served tables."""
    return site.write_lineage(settings, served(settings))


def generate(settings: Settings) -> Path:
    """``dbt docs generate`` (the engine must be up: the catalog comes from it), then the site."""
    dbt(settings, "docs", "generate", "--static", "--target-path", str(site.DBT_DOCS_TARGET))
    _fill_delta_stats(settings, DBT_PROJECT_DIR / site.DBT_DOCS_TARGET)
    out = site.site_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    for name in site.DBT_SITE_FILES:
        shutil.copy2(DBT_PROJECT_DIR / site.DBT_DOCS_TARGET / name, out / name)
    write_lineage(settings)
    return out


def _fill_delta_stats(settings: Settings, docs: Path) -> None:
    """Delta's row counts and sizes into catalog.json and the static page that inlines it.

    (lakehouse/transform/catalog_stats.py says why dbt-spark's are wrong for Delta.) dbt wrote
    static_index.html with catalog.json's text inlined verbatim, so that text is swapped for the
    completed catalog's.
    """
    catalog_path, static_path = docs / "catalog.json", docs / "static_index.html"
    written = catalog_path.read_text().strip()  # as dbt inlines it (load_file_contents strips)
    completed = json.dumps(catalog_stats.fill_from_engine(settings, json.loads(written)))
    catalog_path.write_text(completed)
    static = static_path.read_text()
    if written not in static:
        raise RuntimeError(f"{static_path} does not inline {catalog_path} as dbt writes it")
    static_path.write_text(static.replace(written, completed, 1))
