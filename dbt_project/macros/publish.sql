{#-
  Publishing gold to the warehouses (docs/publish.md). lakehouse/publish/publisher.py copies a snapshot of
  a gold Delta table into the warehouse's `publish_staging` schema, stamped with `_batch_id` and
  `_lake_version`; the publish models below turn that staging table into the served table:
  a MERGE mirror in Snowflake, an append-only batch history in Redshift. These macros are the
  SQL both share. They run on the warehouse targets only (dbt_project.yml enables the folders).
-#}

{#- Business columns of a staged snapshot: every column but the `_`-prefixed publish metadata. -#}
{% macro publish_columns(staged) %}
  {%- set names = [] -%}
  {%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(staged) if not column.name.startswith('_') -%}
      {%- do names.append(column.name | lower) -%}
    {%- endfor -%}
    {%- if not names -%}
      {{ exceptions.raise_compiler_error(
          "Staging table " ~ staged ~ " does not exist or has no columns: run the publish "
          ~ "through `lakehouse publish`, which stages the lake snapshot before dbt runs.") }}
    {%- endif -%}
  {%- endif -%}
  {{ return(names) }}
{% endmacro %}


{#-
  A deterministic fingerprint of a row's business columns, in portable SQL (md5 and concat_ws
  exist in Snowflake, Redshift and PostgreSQL). A null and an empty string hash differently.
-#}
{% macro row_hash(columns) -%}
  md5(concat_ws('|'
  {%- for column in columns %},
    coalesce(cast({{ column }} as {{ dbt.type_string() }}), '<null>')
  {%- endfor %}))
{%- endmacro %}


{#-
  The batch being published for a staged table, from the environment variable
  LAKEHOUSE_PUBLISH_BATCHES (JSON `{<table>: <id>}`), which lakehouse/publish/publisher.py sets, or from
  `--vars '{publish_batches: {<table>: <id>}}'` by hand. Without either the publish models refuse
  to compile. The environment, not --vars, is the platform's way because dbt keys partial parsing
  on the --vars (a new batch id would reparse the whole project, ~12 s a warehouse on 2 cores);
  the variable is read only at execution, so it never invalidates the parse.
-#}
{% macro publish_batch_id(staged) %}
  {%- set batches = var('publish_batches', {}) -%}
  {%- if execute and not batches -%}
    {%- set batches = fromjson(env_var('LAKEHOUSE_PUBLISH_BATCHES', '{}')) -%}
  {%- endif -%}
  {%- set table = staged.identifier | lower -%}
  {%- if not execute -%}
    {{ return('') }}
  {%- elif table not in batches -%}
    {{ exceptions.raise_compiler_error(
        "No batch id for staged table " ~ table ~ ": publish through `lakehouse publish`, or pass "
        ~ "--vars '{publish_batches: {" ~ table ~ ": <batch id>}}'") }}
  {%- endif -%}
  {{ return(batches[table]) }}
{% endmacro %}


{#-
  The staged snapshot of the batch being published, with its row hash and publish time.
  Filtering on the batch means a stale staging table (an older snapshot) can never be published
  under a newer batch id.
-#}
{% macro staged_snapshot(staged) %}
  {%- set columns = publish_columns(staged) -%}
  select
    {% for column in columns -%}
    {{ column }},
    {% endfor -%}
    {{ row_hash(columns) }} as _row_hash,
    _batch_id,
    _lake_version,
    {{ dbt.current_timestamp() }} as _published_at
  from {{ staged }}
  where _batch_id = '{{ publish_batch_id(staged) }}'
{% endmacro %}


{#-
  Incremental strategy `mirror_merge` (Snowflake): make the target equal the snapshot in one
  transaction (on Snowflake; see the end of the macro for the emulator).
  - new keys are inserted, keys whose row hash changed are updated, unchanged rows are not
    touched at all (their `_published_at` and `_batch_id` stay those of the publish that last
    changed them);
  - keys no longer in the snapshot are deleted (Snowflake's MERGE has no WHEN NOT MATCHED BY
    SOURCE, hence the DELETE).
  The INSERT's VALUES list names the source columns qualified: valid Snowflake SQL, and the
  form the fakesnow emulator needs (it reports unqualified ones as ambiguous).
  dbt calls get_incremental_<strategy>_sql for a custom strategy; `source` is the temporary
  relation holding the model's full select (the snapshot).
-#}
{% macro get_incremental_mirror_merge_sql(arg_dict) %}
  {%- set target_relation = arg_dict['target_relation'] -%}
  {%- set source = arg_dict['temp_relation'] -%}
  {%- set keys = arg_dict['unique_key'] -%}
  {%- set keys = [keys] if keys is string else keys -%}
  {%- if not keys -%}
    {{ exceptions.raise_compiler_error("mirror_merge needs a unique_key") }}
  {%- endif -%}
  {%- set columns = arg_dict['dest_columns'] | map(attribute='name') | list -%}
  {%- set key_match -%}
    {% for key in keys -%}
    DBT_INTERNAL_DEST.{{ key }} = DBT_INTERNAL_SOURCE.{{ key }}{% if not loop.last %} and {% endif %}
    {%- endfor %}
  {%- endset -%}
  {%- set dml -%}
    merge into {{ target_relation }} as DBT_INTERNAL_DEST
    using {{ source }} as DBT_INTERNAL_SOURCE
    on {{ key_match }}
    when matched and DBT_INTERNAL_DEST._row_hash <> DBT_INTERNAL_SOURCE._row_hash then update set
      {% for column in columns -%}
      {{ column }} = DBT_INTERNAL_SOURCE.{{ column }}{% if not loop.last %},{% endif %}
      {% endfor %}
    when not matched then insert ({{ columns | join(', ') }})
    values (
      {%- for column in columns -%}
      DBT_INTERNAL_SOURCE.{{ column }}{% if not loop.last %}, {% endif %}
      {%- endfor -%}
    );
    delete from {{ target_relation }} DBT_INTERNAL_DEST
    where not exists (
      select 1 from {{ source }} as DBT_INTERNAL_SOURCE where {{ key_match }}
    )
  {%- endset -%}
  {%- if target.account == 'fakesnow' -%}
    {#- The local emulator (fakesnow 0.12) fails any MERGE inside BEGIN ... COMMIT, so there the
        two statements run on their own. A publish killed between them leaves vanished keys
        undeleted until the next publish, which deletes them: the DELETE is idempotent. -#}
    {{ return(dml) }}
  {%- endif -%}
  {{ return(snowflake_dml_explicit_transaction(dml)) }}
{% endmacro %}


{#-
  The rows a Redshift history model appends: the staged snapshot, unless this batch is already
  in the target (a retried or repeated publish adds nothing). One INSERT ... SELECT: either the
  whole batch lands or none of it.
-#}
{% macro history_batch(staged) %}
  {{ staged_snapshot(staged) }}
  {%- if is_incremental() %}
    and not exists (
      select 1 from {{ this }} as published
      where published._batch_id = '{{ publish_batch_id(staged) }}'
    )
  {%- endif %}
{% endmacro %}
