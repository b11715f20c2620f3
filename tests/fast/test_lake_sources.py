"""The bronze versions the platform's build plans on, read from Delta logs (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from lakehouse.core import bronze_versions


def test_a_table_s_version_moves_with_every_load(tmp_path: Path) -> None:
    location = tmp_path / "bronze" / "fx" / "rates"
    write_deltalake(str(location), pa.table({"id": [1, 2]}))
    first = bronze_versions.read_table(location)
    write_deltalake(str(location), pa.table({"id": [3]}), mode="append")
    second = bronze_versions.read_table(location)
    assert first is not None and second is not None
    assert (first["version"], second["version"]) == (0, 1)
    assert second["loaded_at"] >= first["loaded_at"]
    assert bronze_versions.read(tmp_path)["tables"] == {"bronze/fx/rates": second}


def test_a_missing_or_corrupt_log_reads_as_unknown_not_an_error(tmp_path: Path) -> None:
    """None makes the plan build everything; an exception would stop the platform's build."""
    assert bronze_versions.read_table(tmp_path / "nothing_here") is None
    corrupt = tmp_path / "bronze" / "crm" / "contacts"
    (corrupt / "_delta_log").mkdir(parents=True)
    (corrupt / "_delta_log" / "00000000000000000000.json").write_text("{not json\n")
    assert bronze_versions.read_table(corrupt) is None
    assert bronze_versions.read(tmp_path)["tables"] == {}
