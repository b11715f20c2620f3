{#- The table has at least `min_value` and at most `max_value` rows (either bound optional). -#}
{% test expect_table_row_count_to_be_between(model, min_value=none, max_value=none, row_condition=none, strictly=false) %}
  {%- set lower = '>' if strictly else '>=' -%}
  {%- set upper = '<' if strictly else '<=' -%}
  select row_count
  from (
    select count(*) as row_count
    from {{ model }}
    {%- if row_condition %} where {{ row_condition }}{% endif %}
  ) counted
  where not (
    {%- if min_value is not none %} row_count {{ lower }} {{ min_value }}{% endif %}
    {%- if min_value is not none and max_value is not none %} and{% endif %}
    {%- if max_value is not none %} row_count {{ upper }} {{ max_value }}{% endif %}
    {%- if min_value is none and max_value is none %} true{% endif %}
  )
{% endtest %}
