"""The browsable docs site: dbt's docs, the column-lineage page and the dataset registry.

One folder, ``<home>/docs``, holds all of it: dbt's ``index.html`` with the ``manifest.json`` and
``catalog.json`` it reads, ``static_index.html`` (the same site in one file, opens without a
server), ``lineage.html`` and ``registry.json``. ``make docs`` generates it and serves it over
HTTP; ``make run`` refreshes the lineage page and the registry after every pipeline run.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lakehouse.core.config import Settings
from lakehouse.core.dbt_paths import DBT_PROJECT_DIR, target_dir
from lakehouse.observability.lineage import graph, page, registry

DBT_DOCS_TARGET = Path("target") / "docs"  # dbt's own target path for `docs generate`
DBT_SITE_FILES = ("index.html", "static_index.html", "manifest.json", "catalog.json")


def site_dir(settings: Settings) -> Path:
    return settings.home / "docs"


def lineage_dir(settings: Settings) -> Path:
    """Where every emitter's event files live (lakehouse/observability/lineage/emit.py, Airflow's
    provider)."""
    return settings.home / "lineage"


def _manifest() -> dict:
    """The newest manifest of the lake project (CLI runs, or Airflow's precompiled one)."""
    # target_dir(): the CLI runs' target of this process (DBT_TARGET_PATH, when set)
    targets = (DBT_DOCS_TARGET, target_dir(), Path("target") / "airflow")
    existing = [DBT_PROJECT_DIR / t / "manifest.json" for t in targets]
    existing = [p for p in existing if p.exists()]
    if not existing:
        return {}
    return json.loads(max(existing, key=lambda p: p.stat().st_mtime).read_text())


@dataclass(frozen=True)
class LineagePage:
    page: Path
    registry: Path
    lineage: graph.Lineage


def write_lineage(settings: Settings, served: Iterable[registry.Served]) -> LineagePage:
    """Rebuild the lineage page and the registry from the event files (no engine needed);
    ``served``: the warehouse tables gold is published to (lakehouse/publish/publisher.py)."""
    lineage = graph.load(lineage_dir(settings))
    rows = registry.build(settings, _manifest(), served)
    out = site_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    registry_file = registry.write(rows, out / "registry.json")
    page_file = out / "lineage.html"
    page_file.write_text(page.render(lineage, rows))
    return LineagePage(page_file, registry_file, lineage)


def server(settings: Settings, port: int) -> http.server.ThreadingHTTPServer:
    """An HTTP server for the site folder on 127.0.0.1 (port 0: any free port)."""
    handler = functools.partial(QuietHandler, directory=str(site_dir(settings)))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request is noise
        pass


def serve(settings: Settings, port: int) -> None:
    """Serve the site folder until interrupted."""
    with server(settings, port) as httpd:
        print(f"[lakehouse] docs on http://127.0.0.1:{port}/  (column lineage: "
              f"http://127.0.0.1:{port}/lineage.html); Ctrl-C stops", flush=True)  # fmt: skip
        with contextlib.suppress(KeyboardInterrupt):
            httpd.serve_forever()
