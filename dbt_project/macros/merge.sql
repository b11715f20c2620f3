{#-
  The MERGE of incremental models with `incremental_strategy='merge'` on Delta: dbt-spark's own
  (spark__get_merge_sql, 1.10), plus one option for a model whose source is replaced whole on
  every load (a batch-replace bronze table, such as the Snowflake snapshots):

  `source_is_snapshot: true` — the model selects the whole current source, and the MERGE makes
  the target equal to it:
    - new keys are inserted;
    - a key whose row changed is updated, whatever its `updated_at` says (a change stamped at,
      or before, the newest `updated_at` already merged is not missed, as a watermark filter
      `updated_at > max(updated_at)` would miss it);
    - a key no longer in the source is deleted (Delta's WHEN NOT MATCHED BY SOURCE);
    - an unchanged row is not rewritten. "Changed" compares every column null-safely except
      those listed in `merge_compare_exclude_columns` (e.g. the load time, new on every load).
  Without the option, the MERGE is dbt-spark's: update every matched key, insert the others.
-#}
{% macro spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
  {%- set predicates = [] if incremental_predicates is none else [] + incremental_predicates -%}
  {%- set dest_columns = adapter.get_columns_in_relation(target) -%}
  {%- set merge_update_columns = config.get('merge_update_columns') -%}
  {%- set merge_exclude_columns = config.get('merge_exclude_columns') -%}
  {%- set update_columns = get_merge_update_columns(merge_update_columns, merge_exclude_columns, dest_columns) -%}
  {%- set snapshot = config.get('source_is_snapshot', false) -%}

  {%- if unique_key -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- for key in keys -%}
      {%- do predicates.append('DBT_INTERNAL_SOURCE.' ~ key ~ ' = DBT_INTERNAL_DEST.' ~ key) -%}
    {%- endfor -%}
  {%- elif snapshot -%}
    {{ exceptions.raise_compiler_error("source_is_snapshot needs a unique_key") }}
  {%- else -%}
    {%- do predicates.append('FALSE') -%}
  {%- endif -%}

  {%- set changed = [] -%}
  {%- if snapshot -%}
    {%- set ignored = config.get('merge_compare_exclude_columns', []) | map('lower') | list -%}
    {%- for column in dest_columns if column.name | lower not in ignored -%}
      {%- do changed.append('DBT_INTERNAL_DEST.' ~ column.quoted ~ ' <=> DBT_INTERNAL_SOURCE.' ~ column.quoted) -%}
    {%- endfor -%}
  {%- endif %}

  {{ sql_header if sql_header is not none }}

  merge into {{ target }} as DBT_INTERNAL_DEST
      using {{ source }} as DBT_INTERNAL_SOURCE
      on {{ predicates | join(' and ') }}

      when matched {%- if changed %} and not ({{ changed | join(' and ') }}) {%- endif %} then update set
        {% if update_columns -%}{%- for column_name in update_columns %}
            {{ column_name }} = DBT_INTERNAL_SOURCE.{{ column_name }}
            {%- if not loop.last %}, {%- endif %}
        {%- endfor %}
        {%- else %} * {% endif %}

      when not matched then insert *
      {%- if snapshot %}

      when not matched by source then delete
      {%- endif %}
{% endmacro %}
