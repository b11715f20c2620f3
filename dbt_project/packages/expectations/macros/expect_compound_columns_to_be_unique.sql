{#- No combination of `column_list` occurs twice (rows are returned once per duplicate group). -#}
{% test expect_compound_columns_to_be_unique(model, column_list, row_condition=none, ignore_row_if="all_values_are_missing") %}
  {%- set columns = column_list | join(', ') -%}
  select {{ columns }}, count(*) as occurrences
  from {{ model }}
  where true
    {%- if ignore_row_if == "all_values_are_missing" %}
      and not ({{ column_list | join(' is null and ') }} is null)
    {%- elif ignore_row_if == "any_value_is_missing" %}
      and {{ column_list | join(' is not null and ') }} is not null
    {%- endif %}
    {%- if row_condition %} and ({{ row_condition }}){% endif %}
  group by {{ columns }}
  having count(*) > 1
{% endtest %}
