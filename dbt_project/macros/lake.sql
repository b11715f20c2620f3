{#-
  Where the lake lives. The engine is the source of truth: the Thrift server (and the `session`
  target) sets `spark.lakehouse.lake.dir`, so models never hard-code a path and a project copy in a
  temporary folder (as Cosmos makes) still finds the data. `--vars '{lake_dir: ...}'` overrides.
  The value is a location Spark reads: an absolute path, or `s3a://bucket/prefix/lake` for a lake
  on S3 (lakehouse/core/storage.py converts the platform's `s3://` URIs for Spark).
-#}
{% macro lake_dir() %}
  {%- set override = var('lake_dir', none) -%}
  {%- if override -%}
    {{ return(override) }}
  {%- endif -%}
  {%- set value = run_query('set spark.lakehouse.lake.dir').columns[1].values()[0] -%}
  {%- if not value or value == '<undefined>' -%}
    {{ exceptions.raise_compiler_error(
        "The Spark engine does not define spark.lakehouse.lake.dir. Start it with `make up` "
        ~ "(or set LAKEHOUSE_HOME for the session target), or pass --vars '{lake_dir: /abs/path}'.") }}
  {%- endif -%}
  {{ return(value) }}
{% endmacro %}


{#-
  The Delta path of a bronze source table: <lake>/bronze/<dataset>/<table>, the layout dlt writes
  (ingestion/bronze.py). `bronze_dataset` is declared in the source's meta.
-#}
{% macro bronze_location(source_node, lake) %}
  {{ return(lake ~ '/bronze/' ~ bronze_dataset(source_node) ~ '/' ~ source_node.identifier) }}
{% endmacro %}


{#- The dlt dataset a source's tables live in, from `meta.bronze_dataset` of the table or source. -#}
{% macro bronze_dataset(source_node) %}
  {{ return(source_meta_value(source_node, 'bronze_dataset')) }}
{% endmacro %}


{#- `meta.<key>` of a source table, else of its source; none when neither sets it. -#}
{% macro source_meta_value(source_node, key) %}
  {%- for meta in [source_node.meta, source_node.config.get('meta'), source_node.source_meta] -%}
    {%- if meta and meta.get(key) -%}
      {{ return(meta[key]) }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(none) }}
{% endmacro %}


{#-
  Register every bronze source as an external Delta table over the path dlt wrote, so Spark
  reads it through its Delta transaction log; likewise a source whose meta names its `lake_path`
  (ops.run_metrics). Runs as an on-run-start hook; idempotent.

  Every dbt invocation runs it, so it asks the catalog once what exists (`show databases`, then
  `show tables` per source schema) and creates only what is missing: one statement per schema
  instead of a `create schema` and a `create table if not exists` per source table (34
  statements, run one after the other before the first model could start). As the project's
  on-run-start hook (`only_if_selected=true`), an invocation none of whose selected nodes reads a
  source (the platform's build with nothing new runs only tests of silver models) has nothing
  to register and asks nothing; called by hand (`dbt run-operation register_bronze_sources`) it
  always registers.
-#}
{% macro register_bronze_sources(only_if_selected=false) %}
  {#- Only the lake engine reads bronze; warehouse targets (publish) have no lake. -#}
  {%- if execute and target.type == 'spark'
        and (not only_if_selected or selection_reads_a_source()) -%}
    {%- set lake = lake_dir() -%}
    {%- set wanted = {} -%}
    {%- for node in graph.sources.values() -%}
      {%- set lake_path = source_meta_value(node, 'lake_path') -%}
      {%- if bronze_dataset(node) or lake_path -%}
        {%- set location = (lake ~ '/' ~ lake_path) if lake_path else bronze_location(node, lake) -%}
        {%- do wanted.setdefault(node.schema | lower, {}).update({node.identifier | lower: location}) -%}
        {{ log('bronze source ' ~ node.source_name ~ '.' ~ node.name ~ ' -> ' ~ location) }}
      {%- endif -%}
    {%- endfor -%}
    {%- if wanted -%}
      {%- set schemas = run_query('show databases').columns[0].values() | map('lower') | list -%}
      {%- for schema, tables in wanted.items() -%}
        {%- if schema in schemas -%}
          {%- set existing = run_query('show tables in ' ~ schema).columns[1].values() | map('lower') | list -%}
        {%- else -%}
          {%- do run_query('create schema if not exists ' ~ schema) -%}
          {%- set existing = [] -%}
        {%- endif -%}
        {%- for table, location in tables.items() if table not in existing -%}
          {%- do run_query(
              'create table if not exists ' ~ schema ~ '.' ~ table
              ~ " using delta location '" ~ location ~ "'") -%}
        {%- endfor -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endif -%}
{% endmacro %}


{#-
  Whether any node this invocation selected (`selected_resources`) reads a source: a model or
  test over one, or a source itself; any unit test, whose fixtures may stand in for a source
  (dbt then reads that source's columns). Models further downstream read what dbt built, not
  bronze.
-#}
{% macro selection_reads_a_source() %}
  {%- for unique_id in selected_resources -%}
    {%- if unique_id.startswith('source.') or unique_id.startswith('unit_test.') -%}
      {{ return(true) }}
    {%- endif -%}
    {%- set node = graph.nodes.get(unique_id) -%}
    {%- for parent in (node.depends_on.nodes if node else []) if parent.startswith('source.') -%}
      {{ return(true) }}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(false) }}
{% endmacro %}
