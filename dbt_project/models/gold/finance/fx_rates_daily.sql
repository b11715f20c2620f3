-- One conversion rate per calendar day and currency into the reporting currency.
-- Rates are published on business days only; a day without a publication takes the last known
-- rate (as-of), flagged `is_carried_forward`, so weekends and holidays convert.
-- A rate older than `fx_max_staleness_days` is no rate, anywhere in the calendar: a currency
-- that stops publishing (for good or for a while) has no row on the days its last rate is
-- older than that, and the orders of those days are flagged `is_fx_missing` downstream.
-- The calendar runs past the last publication for at most `fx_max_staleness_days` (and never
-- past today).
{% set reporting = var('reporting_currency') %}
{% set max_staleness_days = var('fx_max_staleness_days') %}

with published as (
    select
        rate_date,
        quote_currency as currency,
        units_per_base as units_per_reporting
    from {{ ref('stg_fx__rates') }}
    where base_currency = '{{ reporting }}'
),

calendar as (
    select
        explode(sequence(
            min(rate_date),
            greatest(
                max(rate_date),
                least(date_add(max(rate_date), {{ max_staleness_days }}), current_date())
            ),
            interval 1 day
        )) as rate_date
    from published
),

currencies as (
    select distinct currency from published
),

as_of as (
    select
        calendar.rate_date,
        currencies.currency,
        last(published.units_per_reporting, true) over currency_history as units_per_reporting,
        last(published.rate_date, true) over currency_history as published_rate_date
    from calendar
    cross join currencies
    left join published
        on calendar.rate_date = published.rate_date
        and currencies.currency = published.currency
    window currency_history as (
        partition by currencies.currency
        order by calendar.rate_date
        rows between unbounded preceding and current row
    )
),

reporting_currency as (
    select
        rate_date,
        '{{ reporting }}' as currency,
        cast(1 as decimal(18, 8)) as units_per_reporting,
        rate_date as published_rate_date
    from calendar
),

fresh as (
    -- no rate yet, or the last one too old: no row (the conversion is missing, never stale)
    select rate_date, currency, units_per_reporting, published_rate_date
    from as_of
    where published_rate_date >= date_sub(rate_date, {{ max_staleness_days }})
),

all_rates as (
    select rate_date, currency, units_per_reporting, published_rate_date from fresh
    union all
    select rate_date, currency, units_per_reporting, published_rate_date from reporting_currency
)

select
    rate_date,
    currency,
    '{{ reporting }}' as reporting_currency,
    units_per_reporting,
    cast(1 / units_per_reporting as decimal(24, 12)) as to_reporting_rate,
    published_rate_date,
    rate_date <> published_rate_date as is_carried_forward
from all_rates
