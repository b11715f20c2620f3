{#-
  Enforce the `not_null` column constraints of a model contract as one Delta CHECK constraint.

  dbt-spark issues `alter table ... change column c set not null` per column, which Spark 4.2
  rejects for Delta tables ([_LEGACY_ERROR_TEMP_2330] Cannot change nullable column to
  non-nullable). A CHECK constraint `c is not null` gives the same guarantee: Delta refuses any
  write with a null there (DELTA_VIOLATE_CONSTRAINT_WITH_VALUES, naming the column and row).
  All columns go into one constraint because each ADD CONSTRAINT scans the table and commits a
  table version (~3 s each here); one statement keeps gold builds fast.
-#}
{% macro spark__alter_column_set_constraints(relation, column_dict) %}
  {%- set not_null = [] -%}
  {%- for column_name in column_dict -%}
    {%- for constraint in column_dict[column_name]['constraints'] -%}
      {%- if constraint.type != 'not_null' -%}
        {{ exceptions.warn('Invalid constraint for column ' ~ column_name ~ '. Only `not_null` is supported.') }}
      {%- else -%}
        {%- do not_null.append(adapter.quote(column_name) if column_dict[column_name]['quote'] else column_name) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- if not_null -%}
    {%- call statement('contract_not_null') -%}
      alter table {{ relation }} add constraint contract_not_null
      check ({{ not_null | join(' is not null and ') }} is not null)
    {%- endcall -%}
  {%- endif -%}
{% endmacro %}
