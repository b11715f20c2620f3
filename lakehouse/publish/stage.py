"""Step 1 of a publish: copy a snapshot into the warehouse's ``publish_staging.<table>``.

Every row is stamped with the snapshot's batch id. The staging table is replaced whole, unless it
already holds exactly that batch (a repeated publish of the same snapshot). A publish killed here
leaves a partial staging table, which the serve step never sees: its row count is checked
against the snapshot first, and the next publish replaces it.
"""

from __future__ import annotations

import pyarrow as pa

from lakehouse.publish.errors import PublishError
from lakehouse.publish.snapshot import Snapshot
from lakehouse.publish.warehouses import Warehouse


def stage(wh: Warehouse, snapshot: Snapshot, restage: bool = False) -> tuple[int, bool]:
    """Replace ``publish_staging.<table>`` with the snapshot; return the rows it now holds and
    whether it was (re)written.

    A staging table holding exactly this batch's rows and nothing else already is the snapshot
    (a batch id names one Delta version; every publish replaces staging whole), so it is kept,
    unless ``restage`` (a full refresh) asks for a fresh copy.
    """
    rows = snapshot.data.num_rows
    if not restage and wh.staging_holds_only(snapshot.table, snapshot.batch_id) == rows:
        return rows, False
    stamped = snapshot.data.append_column(
        "_batch_id", pa.array([snapshot.batch_id] * rows, pa.string())
    ).append_column("_lake_version", pa.array([snapshot.version] * rows, pa.int64()))
    wh.replace_staging(snapshot.table, stamped)
    staged = wh.staged_rows(snapshot.table, snapshot.batch_id)
    if staged != snapshot.data.num_rows:
        raise PublishError(
            f"{wh.name}: staging {snapshot.table} holds {staged} rows of batch "
            f"{snapshot.batch_id}, the snapshot has {snapshot.data.num_rows}; not publishing"
        )
    return staged, True
