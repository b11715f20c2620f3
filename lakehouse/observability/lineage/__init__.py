"""Lineage: OpenLineage events from every job, and what the platform builds from them.

- ``naming`` (lakehouse/core/naming.py): one name per dataset, shared with dbt-ol and Airflow
  (a lake table by its location, its ``spark://host:port`` + ``schema.table`` as symlink;
  OpenLineage's naming for source systems and warehouses).
- ``transform``: the event transformer every emitter's transport goes through (no phantom
  datasets, transformation types, lake tables by location).
- ``emit``: transport configuration (a local file by default, any backend by environment) and the
  events of the platform's own jobs: dlt loads and warehouse publishes.
- ``graph``: reads the event files back into one column-level graph.
- ``page``: the static column-lineage page; ``registry``: the dataset registry.
"""
