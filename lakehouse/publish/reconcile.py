"""Step 3 of a publish: the warehouse must hold exactly the snapshot's rows.

Row count and a checksum of the configured key columns in the warehouse must equal the
snapshot's; otherwise the publish fails with both numbers.
"""

from __future__ import annotations

from lakehouse.core.config import Settings
from lakehouse.publish.errors import PublishError
from lakehouse.publish.snapshot import Fingerprint, Snapshot, fingerprint, snapshot_fingerprint
from lakehouse.publish.warehouses import Warehouse


def reconcile(settings: Settings, wh: Warehouse, snapshot: Snapshot) -> Fingerprint:
    """Fail unless the warehouse holds exactly the snapshot's rows (count and checksum)."""
    columns = settings.publish.tables[snapshot.table].checksum_columns
    expected = snapshot_fingerprint(snapshot, columns)
    actual = fingerprint(wh.published_rows(snapshot.table, columns, snapshot.batch_id))
    if actual != expected:
        raise PublishError(
            f"{wh.name}: {wh.served_table(snapshot.table)} does not reconcile with lake "
            f"gold.{snapshot.table} {snapshot.batch_id}: warehouse {actual.rows} rows, checksum "
            f"{actual.checksum}; lake {expected.rows} rows, checksum {expected.checksum} "
            f"(checksum over {', '.join(columns)})"
        )
    return actual
