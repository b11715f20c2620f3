{#-
  Every `interval` `date_part` between the first and last value of `date_col` has at least one
  row (a calendar with no gaps). Fails with one row per missing period. Dates only.
-#}
{% test expect_row_values_to_have_data_for_every_n_datepart(model, date_col, date_part="day", interval=1, row_condition=none) %}
  with present as (
    select distinct cast({{ date_col }} as date) as period
    from {{ model }}
    {%- if row_condition %} where {{ row_condition }}{% endif %}
  ),
  expected as (
    select explode(sequence(min(period), max(period), interval {{ interval }} {{ date_part }})) as period
    from present
  )
  select expected.period as missing_period
  from expected
  left join present on expected.period = present.period
  where present.period is null
{% endtest %}
