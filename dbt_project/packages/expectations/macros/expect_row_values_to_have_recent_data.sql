{#-
  The newest value of a timestamp column is no older than `interval` `datepart`s before now
  (datepart: second, minute, hour, day, week). `now_value` replaces now() for a fixed clock
  (generated data, backfills, unit tests).
-#}
{% test expect_row_values_to_have_recent_data(model, column_name, datepart, interval, row_condition=none, now_value=none) %}
  {%- set now = "timestamp'" ~ now_value ~ "'" if now_value else "current_timestamp()" -%}
  select newest
  from (
    select max({{ column_name }}) as newest
    from {{ model }}
    {%- if row_condition %} where {{ row_condition }}{% endif %}
  ) latest
  where newest is null
     or newest < {{ now }} - interval {{ interval }} {{ datepart }}
{% endtest %}
