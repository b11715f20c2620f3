"""Rewriting dbt-ol's and Cosmos' events before they leave the platform (docs/lineage.md).

openlineage-python's ``transform`` transport hands every event to an ``EventTransformer`` and
sends what it returns through the transport it wraps; ``emit.transport_config`` configures it for
every emitter the platform starts (its own client, dbt-ol, Airflow's provider). This transformer
does three things the dbt integration does not:

- **One identity per lake table.** dbt-ol names a table by the engine's catalog
  (``spark://host:port`` + ``schema.table``); dlt, Airflow's assets and OpenLineage's Spark
  integration name a Delta table by its location (``file`` + absolute path, ``s3://bucket`` +
  key). Catalog names are rewritten to locations everywhere in the event (inputs, outputs,
  column-lineage input fields) and kept as a ``symlinks`` alias.
- **No phantom datasets.** openlineage-sql reads some names it cannot resolve inside one query
  (a CTE's column, a lambda's variables ``views.key``) as tables. A column-lineage input field is
  kept only when its dataset is one of the run's inputs or outputs: dbt gives those from the
  manifest, so they exist.
- **Transformation types.** openlineage-sql 1.54 gives none (``transformations: []``). sqlglot's
  column lineage over the compiled SQL (the ``sql`` job facet) classifies each input field: a bare
  reference on every step is DIRECT/IDENTITY, an aggregate on the way DIRECT/AGGREGATION, any other
  expression DIRECT/TRANSFORMATION, a column met only in a CASE condition INDIRECT/CONDITIONAL, and
  one used only in a join, filter, grouping, window or sort INDIRECT/<that>. Where sqlglot is not
  installed or cannot read the query, and in an event with several described outputs (Cosmos
  emits one for a whole build, its ``sql`` facet being one model's), a field is DIRECT without
  subtype: openlineage-sql lists only columns whose values reach the output column.

It imports nothing of the platform, so Airflow's environment can load it too.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from openlineage.client.facet_v2 import column_lineage_dataset, symlinks_dataset
from openlineage.client.serde import Serde
from openlineage.client.transport.transform import EventTransformer


@functools.cache
def _sqlglot() -> SimpleNamespace | None:
    """sqlglot, imported on the first event that needs it (about 90 ms of CPU that a process
    which only configures emitters, such as ``lakehouse dbt``, does not pay). Pinned in both
    environments (pyproject.toml and orchestration/pyproject.toml); None without it."""
    try:
        import sqlglot
        from sqlglot import exp
        from sqlglot.lineage import lineage
    except ImportError:  # pragma: no cover - an environment without it classifies nothing
        return None
    return SimpleNamespace(parse_one=sqlglot.parse_one, exp=exp, lineage=lineage)


log = logging.getLogger(__name__)

Kind = tuple[str, str | None]  # (type, subtype)
IDENTITY: Kind = ("DIRECT", "IDENTITY")
TRANSFORMATION: Kind = ("DIRECT", "TRANSFORMATION")
AGGREGATION: Kind = ("DIRECT", "AGGREGATION")
CONDITIONAL: Kind = ("INDIRECT", "CONDITIONAL")
UNCLASSIFIED: Kind = ("DIRECT", None)
# where a column read outside the output value is used, strongest first
_CLAUSES: tuple[tuple[str, str], ...] = (
    ("Join", "JOIN"),
    ("Where", "FILTER"),
    ("Having", "FILTER"),
    ("Qualify", "FILTER"),
    ("Group", "GROUP_BY"),
    ("Window", "WINDOW"),
    ("Order", "SORT"),
)


def _get(obj: Any, key: str) -> Any:
    """A field of an event part, whether the client's attrs model or its JSON form."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _set(obj: Any, key: str, value: Any) -> None:
    if isinstance(obj, dict):
        obj[key] = value
    else:
        setattr(obj, key, value)


@dataclass(frozen=True)
class Root:
    """A folder of the lake as OpenLineage names it (lakehouse/core/naming.py location_dataset)."""

    namespace: str
    name: str

    def join(self, *parts: str) -> tuple[str, str]:
        return self.namespace, "/".join(p for p in (self.name.rstrip("/"), *parts) if p)


@dataclass(frozen=True)
class Lake:
    """Where the engine's catalog keeps each schema's tables."""

    catalog: str  # spark://host:port, the namespace dbt-ol gives the engine's tables
    bronze: Root  # bronze_<source>.<table> -> <bronze>/<source>/<table>
    warehouse: Root  # <schema>.<table> -> <warehouse>/<schema>.db/<table>
    schemas: dict[str, Root]  # schemas kept elsewhere: <schema>.<table> -> <root>/<table>

    @classmethod
    def of(cls, properties: dict[str, Any]) -> Lake:
        def root(value: dict[str, str]) -> Root:
            return Root(value["namespace"], value["name"])

        return cls(
            catalog=properties["catalog"],
            bronze=root(properties["bronze"]),
            warehouse=root(properties["warehouse"]),
            schemas={k: root(v) for k, v in (properties.get("schemas") or {}).items()},
        )

    def locate(self, namespace: str, name: str) -> tuple[str, str] | None:
        """The location of catalog table ``name``; None for anything not in the catalog."""
        schema, _, table = name.partition(".")
        if namespace != self.catalog or not table or "." in table:
            return None
        if schema.startswith("bronze_"):
            return self.bronze.join(schema.removeprefix("bronze_"), table)
        if schema in self.schemas:
            return self.schemas[schema].join(table)
        return self.warehouse.join(f"{schema}.db", table)


def _datasets(event: Any) -> Iterator[Any]:
    for kind in ("inputs", "outputs"):
        yield from _get(event, kind) or []


def _column_lineage(dataset: Any) -> Any:
    return (_get(dataset, "facets") or {}).get("columnLineage")


def _input_fields(facet: Any) -> Iterator[tuple[str, Any, list[Any]]]:
    """(output column, its Fields, its inputFields list) of a column-lineage facet."""
    for column, spec in (_get(facet, "fields") or {}).items():
        yield column, spec, _get(spec, "inputFields") or []


# ---- phantoms ---------------------------------------------------------------------------------


def drop_phantoms(event: Any) -> int:
    """Remove input fields whose dataset is not one of the run's datasets; how many were."""
    known = {(_get(d, "namespace"), _get(d, "name")) for d in _datasets(event)}
    dropped = 0
    for dataset in _datasets(event):
        facet = _column_lineage(dataset)
        if facet is None:
            continue
        for _, spec, fields in _input_fields(facet):
            kept = [f for f in fields if (_get(f, "namespace"), _get(f, "name")) in known]
            dropped += len(fields) - len(kept)
            _set(spec, "inputFields", kept)
        if dataset_level := _get(facet, "dataset"):
            kept = [f for f in dataset_level if (_get(f, "namespace"), _get(f, "name")) in known]
            dropped += len(dataset_level) - len(kept)
            _set(facet, "dataset", kept)
    return dropped


# ---- transformation types ---------------------------------------------------------------------


def _sql(event: Any) -> str | None:
    facet = ((_get(_get(event, "job"), "facets")) or {}).get("sql")
    return _get(facet, "query") if facet is not None else None


def _schema(event: Any) -> dict[str, dict[str, dict[str, str]]]:
    """The inputs' columns, as sqlglot wants them to expand ``select *``."""
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for dataset in _get(event, "inputs") or []:
        db, _, table = str(_get(dataset, "name")).partition(".")
        facet = (_get(dataset, "facets") or {}).get("schema")
        fields = _get(facet, "fields") if facet is not None else None
        if table and fields:
            schema.setdefault(db, {})[table] = {
                _get(f, "name"): _get(f, "type") or "string" for f in fields
            }
    return schema


def _column_name(node: Any) -> str:
    return str(node.name).rsplit(".", 1)[-1]


def _step(expression: Any, column: str) -> Kind:
    """How ``expression`` (one projection of one scope) uses ``column`` of the scope below."""
    exp = _sqlglot().exp
    body = expression.this if isinstance(expression, exp.Alias) else expression
    if isinstance(body, exp.Column):
        return IDENTITY
    uses = [c for c in body.find_all(exp.Column) if c.name == column]
    if uses and all(_conditional(c, body) for c in uses):
        return CONDITIONAL
    if any(c.find_ancestor(exp.AggFunc) is not None for c in uses):
        return AGGREGATION
    return TRANSFORMATION


def _conditional(column: Any, top: Any) -> bool:
    """True when ``column`` only decides which branch is taken (a CASE/IF condition, a FILTER)."""
    exp = _sqlglot().exp
    child, parent = column, column.parent
    while parent is not None and child is not top:
        if isinstance(parent, exp.If) and parent.args.get("this") is child:
            return True
        if isinstance(parent, exp.Filter) and child is parent.args.get("expression"):
            return True
        child, parent = parent, parent.parent
    return False


_ORDER = {IDENTITY: 0, TRANSFORMATION: 1, AGGREGATION: 2, CONDITIONAL: 3}


def _paths(node: Any, kinds: tuple[Kind, ...]) -> Iterator[tuple[Any, tuple[Kind, ...]]]:
    """Every leaf under ``node`` with the kinds of the steps that lead to it."""
    if not node.downstream:
        yield node, kinds
        return
    for child in node.downstream:
        yield from _paths(child, (*kinds, _step(node.expression, _column_name(child))))


def _table(node: Any) -> str | None:
    source = node.source
    if isinstance(source, _sqlglot().exp.Table):
        return ".".join(p for p in (source.db, source.name) if p)
    return None


def direct_kinds(sql: str, schema: dict[str, Any]) -> dict[str, dict[tuple[str, str], set[Kind]]]:
    """Output column -> (table, column) it reads -> how, by sqlglot's column lineage."""
    sg = _sqlglot()
    tree = sg.parse_one(sql, dialect="spark")
    nodes = sg.lineage(None, tree, schema=schema, dialect="spark")
    result: dict[str, dict[tuple[str, str], set[Kind]]] = {}
    for column, root in nodes.items():
        reads = result.setdefault(column, {})
        for leaf, kinds in _paths(root, ()):
            table = _table(leaf)
            if table:
                worst = max(kinds, key=_ORDER.__getitem__) if kinds else IDENTITY
                reads.setdefault((table, _column_name(leaf)), set()).add(worst)
    return result


def clause_kinds(sql: str) -> dict[str, Kind]:
    """Column name -> the strongest clause it is used in (join, filter, grouping, window, sort)."""
    sg = _sqlglot()
    tree = sg.parse_one(sql, dialect="spark")
    rank: dict[str, int] = {}
    for column in tree.find_all(sg.exp.Column):
        for i, (cls_name, _) in enumerate(_CLAUSES):
            if column.find_ancestor(getattr(sg.exp, cls_name)) is not None:
                rank[column.name] = min(i, rank.get(column.name, i))
                break
    return {name: ("INDIRECT", _CLAUSES[i][1]) for name, i in rank.items()}


@dataclass
class Classifier:
    """Transformation types of one event's column lineage, from its compiled SQL."""

    direct: dict[str, dict[tuple[str, str], set[Kind]]]
    clauses: dict[str, Kind]

    @classmethod
    def of(cls, event: Any) -> Classifier:
        sql = _sql(event)
        if _sqlglot() is None or not sql:
            return cls({}, {})
        try:
            return cls(direct_kinds(sql, _schema(event)), clause_kinds(sql))
        except Exception as error:  # sqlglot could not read it: the fields stay unclassified
            log.warning("column transformations not classified: %s", error)
            return cls({}, {})

    def kinds(self, column: str, table: str, field: str) -> list[Kind]:
        if not self.direct:
            return [UNCLASSIFIED]
        found = self.direct.get(column, {}).get((table, field))
        if found:
            return sorted(found, key=_ORDER.__getitem__)
        return [self.clauses.get(field, UNCLASSIFIED)]


def _transformation(kind: Kind, like: Any) -> Any:
    if isinstance(like, dict):
        return {"type": kind[0], **({"subtype": kind[1]} if kind[1] else {})}
    return column_lineage_dataset.Transformation(type=kind[0], subtype=kind[1])


def classify(event: Any) -> int:
    """Give every input field without transformations its types; how many were given."""
    classifier: Classifier | None = None
    given = 0
    described = [d for d in _get(event, "outputs") or [] if _column_lineage(d) is not None]
    if len(described) > 1:  # Cosmos: one event for a whole build, the SQL facet of one model
        classifier = Classifier({}, {})
    for dataset in described:
        facet = _column_lineage(dataset)
        for column, _, fields in _input_fields(facet):
            for f in fields:
                if _get(f, "transformations"):
                    continue
                classifier = classifier or Classifier.of(event)
                kinds = classifier.kinds(column, _get(f, "name"), _get(f, "field"))
                _set(f, "transformations", [_transformation(k, f) for k in kinds])
                given += 1
    return given


# ---- identity ---------------------------------------------------------------------------------


def relocate(event: Any, lake: Lake) -> int:
    """Name every catalog table of the event by its location, the catalog name as a symlink."""
    moved = 0
    for dataset in _datasets(event):
        namespace, name = _get(dataset, "namespace"), _get(dataset, "name")
        if where := lake.locate(namespace, name):
            _set(dataset, "namespace", where[0])
            _set(dataset, "name", where[1])
            facets = _get(dataset, "facets")
            if facets is None:
                facets = {}
                _set(dataset, "facets", facets)
            _add_symlink(facets, namespace, name, as_dict=isinstance(dataset, dict))
            moved += 1
        facet = _column_lineage(dataset)
        for _, _, fields in _input_fields(facet) if facet is not None else ():
            for f in fields:
                if where := lake.locate(_get(f, "namespace"), _get(f, "name")):
                    _set(f, "namespace", where[0])
                    _set(f, "name", where[1])
    return moved


def _add_symlink(facets: dict[str, Any], namespace: str, name: str, as_dict: bool) -> None:
    identifier = symlinks_dataset.Identifier(namespace=namespace, name=name, type="TABLE")
    facet = facets.get("symlinks")
    if facet is None:
        facet = symlinks_dataset.SymlinksDatasetFacet(identifiers=[identifier])
        facets["symlinks"] = Serde.to_dict(facet) if as_dict else facet
        return
    identifiers = _get(facet, "identifiers") or []
    if not any((_get(i, "namespace"), _get(i, "name")) == (namespace, name) for i in identifiers):
        identifiers.append(Serde.to_dict(identifier) if as_dict else identifier)
        _set(facet, "identifiers", identifiers)


# ---- the transformer --------------------------------------------------------------------------


def rewrite(event: Any, lake: Lake) -> Any:
    """The three rewrites, in the order that needs it: phantoms and types by catalog name."""
    drop_phantoms(event)
    classify(event)
    relocate(event, lake)
    return event


class LakeTransformer(EventTransformer):
    """The ``transformer_class`` of the platform's ``transform`` transport.

    ``properties``: ``catalog`` (the engine's namespace), ``bronze`` and ``warehouse`` (each
    ``{namespace, name}`` of the folder), ``schemas`` (schemas kept elsewhere, the same way).
    """

    def __init__(self, properties: dict[str, Any]) -> None:
        super().__init__(properties)
        self.lake = Lake.of(properties)

    def transform(self, event: Any) -> Any:
        try:
            return rewrite(event, self.lake)
        except Exception as error:  # never lose an event to a bug here: send it as it was
            log.warning("OpenLineage event not rewritten: %s", error)
            return event
