{#-
  Every non-null value lies within [min_value, max_value] (either bound optional);
  `strictly: true` excludes the bounds.
-#}
{% test expect_column_values_to_be_between(model, column_name, min_value=none, max_value=none, row_condition=none, strictly=false) %}
  {%- set lower = '>' if strictly else '>=' -%}
  {%- set upper = '<' if strictly else '<=' -%}
  select *
  from {{ model }}
  where {{ column_name }} is not null
    and not (
      {%- if min_value is not none %} {{ column_name }} {{ lower }} {{ min_value }}{% endif %}
      {%- if min_value is not none and max_value is not none %} and{% endif %}
      {%- if max_value is not none %} {{ column_name }} {{ upper }} {{ max_value }}{% endif %}
      {%- if min_value is none and max_value is none %} true{% endif %}
    )
    {%- if row_condition %} and ({{ row_condition }}){% endif %}
{% endtest %}
