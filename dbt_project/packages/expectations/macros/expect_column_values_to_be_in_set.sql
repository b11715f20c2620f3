{#- Every non-null value is one of `value_set`. -#}
{% test expect_column_values_to_be_in_set(model, column_name, value_set, quote_values=true, row_condition=none) %}
  select *
  from {{ model }}
  where {{ column_name }} is not null
    and {{ column_name }} not in (
      {%- for value in value_set -%}
        {%- if quote_values %}'{{ value }}'{% else %}{{ value }}{% endif %}{{ ", " if not loop.last }}
      {%- endfor -%}
    )
    {%- if row_condition %} and ({{ row_condition }}){% endif %}
{% endtest %}
