{#-
  Tables a renamed model leaves behind in a lake built before the rename: dbt never drops a
  relation it no longer knows. Run once per lake home after upgrading:
    lakehouse dbt run-operation drop_renamed_relations
  Each entry is (schema, old name, new name); dropping an absent table is a no-op.
-#}
{% macro drop_renamed_relations() %}
  {%- set renamed = [('gold', 'fct_orders', 'orders')] -%}
  {%- for schema, old, new in renamed %}
    {%- do log('dropping ' ~ schema ~ '.' ~ old ~ ' (now ' ~ schema ~ '.' ~ new ~ ') if present', info=true) -%}
    {%- do run_query('drop table if exists ' ~ schema ~ '.' ~ old) -%}
  {%- endfor %}
{% endmacro %}
