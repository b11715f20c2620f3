"""What a failed or interrupted load leaves in dlt's pipeline folder, and how the next run resumes.

dlt commits a source's state (watermark, Kafka offsets) together with its load package, so a
load that fails wrote nothing to bronze and moved no state: the next run simply reads again.
Two things in the pipeline folder still need handling, both here, both called by
lakehouse/pipeline/loads.py around each source's load:

- a failed extract leaves its partial files in a temporary folder that dlt never reads again
  (``discard_unfinished_extracts``);
- a run stopped *after* extracting (killed while normalising or loading) leaves a whole package
  whose state is already advanced; it must be loaded, once, before anything new is extracted
  (``finish_pending``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ingestion import bronze
from lakehouse.core.config import Settings

log = logging.getLogger(__name__)


def discard_unfinished_extracts(settings: Settings, name: str) -> list[Path]:
    """Delete what failed extracts of the source wrote; return the folders deleted.

    dlt extracts into a temporary folder (``normalize/<random id>``) and moves the package to
    ``normalize/extracted`` only when the extract succeeds. After a failure the folder stays,
    never read again: partial data that would pile up with every failed attempt. Only the
    loader of this source writes there (one load per source at a time), so nothing else's work
    is removed.
    """
    normalize = Path(bronze.pipeline(settings, name).working_dir) / "normalize"
    if not normalize.exists():
        return []
    stale = [p for p in normalize.iterdir() if p.is_dir() and p.name != "extracted"]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


def finish_pending(settings: Settings, name: str) -> int:
    """Load the packages an earlier run extracted but did not load; return how many.

    A run that stopped after dlt's extract step (killed, or a failure while normalising or
    writing) leaves its package in the pipeline's folder, with the state (watermark, offsets)
    that goes with it already advanced. dlt's ``run`` would load it and return *without*
    extracting the new data; doing it first, here, makes one ``ingest`` both finish the old load
    and make the new one, and neither loses nor loads anything twice.
    """
    pipe = bronze.pipeline(settings, name)
    if not pipe.has_pending_data:
        return 0
    pending = [*pipe.list_extracted_load_packages(), *pipe.list_normalized_load_packages()]
    info = pipe.run()
    if info is None:
        # The dataset was never written: dlt's state sync drops the packages together with the
        # local state they advanced, so this load starts from the beginning; nothing is lost.
        log.info(f"{name}: an earlier run left {len(pending)} package(s) for a dataset never "
                 f"written; dlt reset them with their state, this load starts over")  # fmt: skip
        return 0
    info.raise_on_failed_jobs()
    log.info(f"{name}: loaded {len(pending)} package(s) an earlier run left unloaded: "
             f"{', '.join(pending)}")  # fmt: skip
    return len(pending)
