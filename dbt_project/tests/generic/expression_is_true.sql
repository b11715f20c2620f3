{#- Fails for every row where `expression` is not true (a row-level business rule). -#}
{% test expression_is_true(model, expression, column_name=none) %}
  select *
  from {{ model }}
  where not coalesce({{ expression }}, false)
{% endtest %}
