"""Lineage: OpenLineage events from every job, and what the platform builds from them.

- ``naming``: one name per dataset, shared with dbt-ol and Airflow (``spark://host:port`` +
  ``schema.table`` for lake tables, OpenLineage's naming for source systems and warehouses).
- ``emit``: transport configuration (a local file by default, any backend by environment) and the
  events of the platform's own jobs: dlt loads and warehouse publishes.
- ``graph``: reads the event files back into one column-level graph.
- ``page``: the static column-lineage page; ``registry``: the dataset registry.
"""
