"""A dataset as one run saw it, and its OpenLineage facets.

Built by whoever knows the dataset (a source's load, the publish step) from the kernel's names
(lakehouse/core/naming.py) and sent by the emitter (lakehouse/observability/lineage/emit.py), so
the layers below observability describe their datasets without importing the code that sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    datasource_dataset,
    output_statistics_output_dataset,
    schema_dataset,
    storage_dataset,
    symlinks_dataset,
)

from lakehouse.core.naming import DatasetId


@dataclass
class Dataset:
    """A dataset as one run saw it; facets are filled only from what the run knows."""

    id: DatasetId
    columns: Mapping[str, str] = field(default_factory=dict)  # name -> type, in order
    system: str | None = None  # the source system or warehouse it lives in
    symlink: DatasetId | None = None  # the same dataset by its table name
    storage: tuple[str, str] | None = None  # (storage layer, file format)
    lineage: Mapping[str, Sequence[tuple[DatasetId, str]]] = field(default_factory=dict)
    rows: int | None = None

    def facets(self) -> dict[str, Any]:
        facets: dict[str, Any] = {}
        if self.columns:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(name=n, type=t)
                    for n, t in self.columns.items()
                ]
            )
        if self.system:
            facets["dataSource"] = datasource_dataset.DatasourceDatasetFacet(
                name=self.system, uri=self.id.namespace
            )
        if self.symlink:
            facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(
                identifiers=[
                    symlinks_dataset.Identifier(
                        namespace=self.symlink.namespace, name=self.symlink.name, type="TABLE"
                    )
                ]
            )
        if self.storage:
            facets["storage"] = storage_dataset.StorageDatasetFacet(
                storageLayer=self.storage[0], fileFormat=self.storage[1]
            )
        if self.lineage:
            facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
                fields={
                    column: column_lineage_dataset.Fields(
                        inputFields=[
                            column_lineage_dataset.InputField(
                                namespace=src.namespace,
                                name=src.name,
                                field=src_field,
                                transformations=[
                                    column_lineage_dataset.Transformation(
                                        type="DIRECT", subtype="IDENTITY"
                                    )
                                ],
                            )
                            for src, src_field in inputs
                        ]
                    )
                    for column, inputs in self.lineage.items()
                }
            )
        return facets

    def as_input(self) -> InputDataset:
        return InputDataset(namespace=self.id.namespace, name=self.id.name, facets=self.facets())

    def as_output(self) -> OutputDataset:
        stats = {}
        if self.rows is not None:
            stats["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=self.rows
                )
            )
        return OutputDataset(
            namespace=self.id.namespace,
            name=self.id.name,
            facets=self.facets(),
            outputFacets=stats,
        )
