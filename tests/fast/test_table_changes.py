"""The change audit's core on hand-made Delta tables (delta-rs, no engine): what counts as a
change, what is refused, and that the same versions always give the same answer."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
from openlineage.client.serde import Serde

from lakehouse.cli.main import main
from lakehouse.core.config import Settings
from lakehouse.core.storage import Location, write_delta
from lakehouse.observability import table_changes as tc
from lakehouse.observability.lineage import change_facet

SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("name", pa.string()),
    ("score", pa.float64()),
    ("amount", pa.decimal128(18, 2)),
    ("loaded_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


def _rows(*rows: tuple[Any, ...]) -> pa.Table:
    names = SCHEMA.names
    return pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows], schema=SCHEMA)


def _at(hour: int) -> datetime:
    return datetime(2026, 1, 1, hour, tzinfo=UTC)


BEFORE = _rows(
    (1, "a", 1.0, Decimal("1.00"), _at(1)),
    (2, "b", None, Decimal("2.00"), _at(1)),
    (3, None, 3.0, Decimal("3.00"), _at(1)),
    (4, "d", 0.1, Decimal("4.00"), _at(1)),
    (5, "e", 5.0, None, _at(1)),
)
AFTER = _rows(
    (1, "a", 1.0, Decimal("1.00"), _at(2)),  # only the load time: no change
    (2, "b", 2.0, Decimal("2.00"), _at(2)),  # NULL -> value
    (3, None, 3.0, Decimal("3.01"), _at(2)),  # NULL name both sides: not a change; amount is
    (4, "d", 0.1 + 1e-15, Decimal("4.00"), _at(2)),  # a float compared exactly as stored
    (6, "f", 6.0, Decimal("6.00"), _at(2)),  # added; 5 removed
)


def _diff(before: pa.Table = BEFORE, after: pa.Table = AFTER, **kwargs: Any) -> tc.Diff:
    kwargs.setdefault("ignore", ["loaded_at"])
    return tc.diff("gold.t", ("id",), before, after, (0, 1), **kwargs)


def test_added_removed_and_changed_rows_are_counted_per_column() -> None:
    d = _diff()
    assert (d.rows_before, d.rows_after) == (5, 5)
    assert (d.added, d.removed, d.changed) == (1, 1, 3)
    assert d.columns == {"amount": 1, "score": 2}  # most first, then by name
    assert d.change_share == pytest.approx(5 / 5)
    changed = {tuple(e["key"].values()): e["columns"] for e in d.examples if e["kind"] == "changed"}
    assert changed == {
        (2,): {"score": [None, 2.0]},
        (3,): {"amount": ["3.00", "3.01"]},
        (4,): {"score": [0.1, 0.1 + 1e-15]},
    }
    added = [e for e in d.examples if e["kind"] == "added"]
    assert added == [{"key": {"id": 6}, "kind": "added", "columns": {
        "name": [None, "f"], "score": [None, 6.0], "amount": [None, "6.00"],
        "loaded_at": [None, "2026-01-01T02:00:00+00:00"]}}]  # fmt: skip
    assert [e["key"] for e in d.examples if e["kind"] == "removed"] == [{"id": 5}]


def test_null_against_null_is_no_change_and_null_against_a_value_is() -> None:
    before = _rows((1, None, None, None, _at(1)), (2, None, 1.0, None, _at(1)))
    after = _rows((1, None, None, None, _at(1)), (2, "x", None, None, _at(1)))
    d = _diff(before, after)
    assert d.changed == 1
    assert d.columns == {"name": 1, "score": 1}


def test_an_ignored_column_is_never_a_change_unless_asked_for() -> None:
    assert "loaded_at" not in _diff().columns
    assert _diff().ignored == ["loaded_at"]
    every = _diff(ignore=[])
    assert every.columns["loaded_at"] == 4
    assert every.changed == 4
    # scoped to one table: `table.column` and `schema.table.column`
    assert "loaded_at" not in _diff(ignore=["t.loaded_at"]).columns
    assert "loaded_at" not in _diff(ignore=["gold.t.loaded_at"]).columns
    assert "loaded_at" in _diff(ignore=["other.loaded_at"]).columns


def test_a_duplicate_key_in_either_version_is_refused_not_diffed() -> None:
    duplicated = _rows((1, "a", 1.0, None, _at(1)), (1, "b", 1.0, None, _at(1)))
    with pytest.raises(
        tc.AuditError, match=r"version 1 has duplicate keys \(id\): id=1 \(2 rows\)"
    ):
        _diff(BEFORE, duplicated)
    with pytest.raises(tc.AuditError, match="version 0 has duplicate keys"):
        _diff(duplicated, AFTER)


def test_a_null_key_matches_a_null_key() -> None:
    before = _rows((None, "a", 1.0, None, _at(1)))
    after = _rows((None, "b", 1.0, None, _at(1)))
    d = _diff(before, after)
    assert (d.added, d.removed, d.changed) == (0, 0, 1)


def test_the_same_versions_give_the_same_answer_whatever_the_row_order() -> None:
    rng = random.Random(7)
    before = [(i, f"n{i}", float(i), Decimal(i), _at(1)) for i in range(200)]
    after = [(i, f"n{i}" if i % 7 else "x", float(i), Decimal(i), _at(1)) for i in range(20, 230)]
    first = _diff(_rows(*before), _rows(*after), examples=5).as_dict()
    for _ in range(3):
        rng.shuffle(before)
        rng.shuffle(after)
        assert _diff(_rows(*before), _rows(*after), examples=5).as_dict() == first
    assert [e["key"]["id"] for e in first["examples"] if e["kind"] == "changed"] == [
        21, 28, 35, 42, 49]  # fmt: skip
    assert [e["key"]["id"] for e in first["examples"] if e["kind"] == "removed"] == [0, 1, 2, 3, 4]


def test_a_compound_key_and_examples_bounded() -> None:
    schema = pa.schema([("day", pa.string()), ("cur", pa.string()), ("rate", pa.float64())])
    before = pa.Table.from_pylist([{"day": "d1", "cur": c, "rate": 1.0} for c in "ABC"], schema)
    after = pa.Table.from_pylist([{"day": "d1", "cur": c, "rate": 2.0} for c in "ABC"], schema)
    d = tc.diff("gold.fx", ("day", "cur"), before, after, (3, 4), examples=2)
    assert d.changed == 3
    assert [e["key"] for e in d.examples] == [{"day": "d1", "cur": "A"}, {"day": "d1", "cur": "B"}]


def _table(tmp_path: Path, *versions: pa.Table) -> Location:
    location = Location.of(tmp_path / "t")
    for i, data in enumerate(versions):
        write_delta(location, data, mode="error" if i == 0 else "overwrite")
    return location


def test_versions_read_by_time_travel_and_a_missing_one_refused(tmp_path: Path) -> None:
    location = _table(tmp_path, BEFORE, AFTER)
    audited = tc.AuditedTable("gold.t", location, ("id",))
    assert tc.default_versions(location) == (0, 1)
    d = tc.diff_versions(audited, None, None, ["loaded_at"])
    assert (d.from_version, d.to_version, d.added, d.removed, d.changed) == (0, 1, 1, 1, 3)
    with pytest.raises(tc.AuditError, match=r"version 7 of .* does not exist \(latest: 1\)"):
        tc.diff_versions(audited, 0, 7)
    with pytest.raises(tc.AuditError, match="version -1 does not exist"):
        tc.diff_versions(audited, -1, 1)


def test_a_table_with_one_build_has_nothing_to_compare(tmp_path: Path) -> None:
    with pytest.raises(tc.AuditError, match="1 build"):
        tc.default_versions(_table(tmp_path, BEFORE))
    with pytest.raises(tc.AuditError, match="never built"):
        tc.default_versions(Location.of(tmp_path / "nothing"))


def test_builds_are_told_apart_from_their_constraint_commits() -> None:
    ops = ["CREATE OR REPLACE TABLE AS SELECT", "CHANGE COLUMN", "ADD CONSTRAINT",
           "CREATE OR REPLACE TABLE AS SELECT", "CHANGE COLUMN", "CREATE OR REPLACE TABLE",
           "WRITE", "SET TBLPROPERTIES", "MERGE", "WRITE"]  # fmt: skip
    commits = [{"version": v, "operation": op} for v, op in enumerate(ops)]
    assert tc.build_versions(commits) == [2, 4, 7, 8, 9]


def _manifest(tests: list[dict[str, Any]], columns: dict[str, Any] | None = None) -> dict:
    model = {"unique_id": "model.p.m", "resource_type": "model", "schema": "gold", "alias": "m",
             "name": "m", "columns": columns or {"a": {}, "b": {}}, "constraints": []}  # fmt: skip
    nodes = {"model.p.m": model}
    for i, t in enumerate(tests):
        config = {"severity": "ERROR", **t.pop("config", {})}
        nodes[f"test.p.t{i}"] = {"resource_type": "test", "attached_node": "model.p.m",
                                 "config": config, **t}  # fmt: skip
    return {"nodes": nodes}


def _unique(column: str, **config: Any) -> dict[str, Any]:
    return {"test_metadata": {"name": "unique", "kwargs": {"column_name": column}},
            "column_name": column, "config": config}  # fmt: skip


def test_the_key_comes_from_the_dbt_project(settings: Settings) -> None:
    combination = {"test_metadata": {"name": "unique_combination_of_columns",
                                     "kwargs": {"combination_of_columns": ["a", "b"]}}}  # fmt: skip
    assert tc.audited_table(settings, _manifest([_unique("b")]), "m").key == ("b",)
    assert tc.audited_table(settings, _manifest([combination]), "gold.m").key == ("a", "b")
    # a warning is no key while an error is; a filtered test holds for some rows only
    warned = _manifest([_unique("a", severity="warn"), _unique("b")])
    assert tc.audited_table(settings, warned, "m").key == ("b",)
    with pytest.raises(tc.AuditError, match="no unique key"):
        tc.audited_table(settings, _manifest([_unique("a", where="a > 0")]), "m")
    with pytest.raises(tc.AuditError, match="no unique key"):
        tc.audited_table(settings, _manifest([]), "m")
    pk = _manifest([_unique("a")], {"a": {}, "b": {"constraints": [{"type": "primary_key"}]}})
    assert tc.audited_table(settings, pk, "m").key == ("b",)
    with pytest.raises(tc.AuditError, match="unknown table 'nope'"):
        tc.audited_table(settings, _manifest([]), "nope")
    audited = tc.audited_table(settings, _manifest([_unique("a")]), "m")
    assert audited.location == settings.warehouse / "gold.db" / "m"


def test_the_ops_row_and_its_lineage_facet(settings: Settings) -> None:
    d = _diff()
    row = tc.row(d, "inv-1", 0.2, datetime(2026, 1, 1, tzinfo=UTC))
    assert row["over_threshold"] is True
    assert json.loads(row["columns"]) == {"amount": 1, "score": 2}
    assert tc.record(settings, [row]) == 1
    (stored,) = [r for r in tc.read(settings) if r["build_id"] == "inv-1"]
    assert stored["change_share"] == pytest.approx(1.0)
    facet = change_facet.facet(row, d.key, d.columns)
    start, complete = change_facet.events(settings, "inv-1", [("gold.t", facet)])
    assert (start.eventType.value, complete.eventType.value) == ("START", "COMPLETE")
    assert start.run.runId == complete.run.runId
    sent = json.loads(Serde.to_json(complete))
    (dataset,) = sent["inputs"]
    assert dataset["name"].endswith("warehouse/gold.db/t")
    body = dataset["facets"][change_facet.FACET]
    assert body["_producer"] and body["_schemaURL"] == change_facet.SCHEMA_URL
    schema = json.loads(change_facet.SCHEMA_FILE.read_text())
    defs = schema["$defs"]["TableChangesDatasetFacet"]["allOf"][1]
    jsonschema.validate(body, {**defs, "$defs": schema["$defs"]})
    assert sent["run"]["facets"]["dbt_run"]["invocation_id"] == "inv-1"
    assert not sent["outputs"]


def test_the_cli_refuses_what_it_cannot_diff(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(settings.home))
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "target"))
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "manifest.json").write_text(json.dumps(_manifest([_unique("a")])))
    assert main(["diff", "nope"]) == 1
    assert "unknown table 'nope'" in capsys.readouterr().err
    assert main(["diff", "m"]) == 1
    assert "never built" in capsys.readouterr().err


def test_a_change_over_the_threshold_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        tc.warn_over_threshold([_diff()], 0.2)
    assert "gold.t changed 100.0% of its rows" in caplog.text


def test_a_column_whose_type_changed_is_compared_by_value_or_text() -> None:
    old = pa.array([Decimal("1.50"), Decimal("2.00")], pa.decimal128(18, 2))
    new = pa.array([Decimal("1.5000"), Decimal("2.0100")], pa.decimal128(18, 4))
    before = pa.table({"id": [1, 2], "n": old, "s": [1, 2]})
    after = pa.table({"id": [1, 2], "n": new, "s": ["1", "x"]})
    d = tc.diff("gold.t", ("id",), before, after, (0, 1))
    assert d.columns == {"n": 1, "s": 1}
    assert d.columns_retyped == ["n", "s"]
