{#- The relation has a column named `column_name` (case-insensitive). -#}
{% test expect_column_to_exist(model, column_name) %}
  {%- set columns = adapter.get_columns_in_relation(model) | map(attribute='name') | map('lower') | list -%}
  select '{{ column_name }}' as missing_column
  {%- if column_name | lower in columns %}
  where false
  {%- endif %}
{% endtest %}
