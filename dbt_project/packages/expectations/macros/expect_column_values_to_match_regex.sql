{#-
  Every non-null value of the column matches `regex` (Spark `rlike`, Java regex syntax).
  `is_raw` is accepted for dbt-expectations compatibility; Spark needs no escaping mode.
-#}
{% test expect_column_values_to_match_regex(model, column_name, regex, row_condition=none, is_raw=false, flags="") %}
  select *
  from {{ model }}
  where {{ column_name }} is not null
    and not ({{ column_name }} rlike '{{ regex }}')
    {%- if row_condition %} and ({{ row_condition }}){% endif %}
{% endtest %}
