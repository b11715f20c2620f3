{#-
  Enforce the `not_null` column constraints of a model contract as one Delta CHECK constraint,
  declared by the CREATE statement itself.

  dbt-spark issues `alter table ... change column c set not null` per column, which Spark 4.2
  rejects for Delta tables ([_LEGACY_ERROR_TEMP_2330] Cannot change nullable column to
  non-nullable). A CHECK constraint `c is not null` gives the same guarantee: Delta refuses any
  write with a null there (DELTA_VIOLATE_CONSTRAINT_WITH_VALUES, naming the column and row).

  Delta keeps a CHECK constraint as the table property `delta.constraints.<name>`, and a CREATE
  (OR REPLACE) TABLE ... AS SELECT that sets it checks its own rows against it before it commits.
  So the `create or replace table` of a contract model carries the constraint in its
  TBLPROPERTIES (`spark__tblproperties_clause` below) instead of an `alter table ... add
  constraint` after it, which re-read the whole new table and committed a second table version
  (1-3 s per gold model, more on a cold engine). It is also stricter: a null now fails the CTAS,
  so the table is never replaced by rows that break the contract (before, the rows were
  committed first and the ALTER failed after).
-#}

{#- The CHECK expression for the model's `not_null` contract columns, or none. -#}
{% macro contract_not_null_expression(column_dict) %}
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
  {{ return((not_null | join(' is not null and ') ~ ' is not null') if not_null else none) }}
{% endmacro %}


{#- dbt-spark's TBLPROPERTIES clause, plus the contract's CHECK constraint on a Delta table. -#}
{% macro spark__tblproperties_clause() -%}
  {%- set tblproperties = dict(config.get('tblproperties') or {}) -%}
  {%- set contract = config.get('contract') -%}
  {%- if contract and contract.enforced and config.get('file_format') == 'delta' -%}
    {%- set expression = contract_not_null_expression(model.columns) -%}
    {%- if expression -%}
      {%- do tblproperties.update({'delta.constraints.contract_not_null': expression}) -%}
    {%- endif -%}
  {%- endif -%}
  {%- if tblproperties %}
    tblproperties (
      {%- for prop in tblproperties -%}
      '{{ prop }}' = '{{ tblproperties[prop] }}' {% if not loop.last %}, {% endif %}
      {%- endfor %}
    )
  {%- endif %}
{%- endmacro -%}


{#-
  Called by dbt-spark (`persist_constraints`, Delta only) after the CTAS of a contract model: the
  CTAS above already declared the constraint, so there is nothing left to do.
-#}
{% macro spark__alter_column_set_constraints(relation, column_dict) %}
{% endmacro %}
