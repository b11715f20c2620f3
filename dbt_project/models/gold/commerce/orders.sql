-- One row per order, in its own currency and in the reporting currency. The FX rate is the one
-- in force on the order date (as-of: a day without a publication uses the last one, if it is at
-- most `fx_max_staleness_days` old); an order whose currency has no rate that day (unknown
-- currency, or a last rate too old) is flagged and has a null reporting amount, never a
-- silent zero nor a stale rate.
with orders as (
    select
        order_id,
        customer_id,
        ordered_at,
        order_date,
        status,
        currency_code,
        line_count,
        invalid_line_count,
        units,
        order_amount,
        invalid_reason
    from {{ ref('int_orders__amounts') }}
),

rates as (
    select rate_date, currency, to_reporting_rate, is_carried_forward
    from {{ ref('fx_rates_daily') }}
)

select
    orders.order_id,
    orders.customer_id,
    orders.ordered_at,
    orders.order_date,
    orders.status,
    orders.currency_code,
    orders.line_count,
    orders.units,
    orders.order_amount,
    '{{ var("reporting_currency") }}' as reporting_currency,
    rates.to_reporting_rate as fx_rate,
    cast(orders.order_amount * rates.to_reporting_rate as decimal(18, 2)) as order_amount_reporting,
    rates.to_reporting_rate is null as is_fx_missing,
    coalesce(rates.is_carried_forward, false) as is_fx_carried_forward,
    customers.customer_id is null as is_orphan_customer,
    orders.invalid_line_count > 0 as has_invalid_lines,
    orders.invalid_reason = '' and customers.customer_id is not null
    and rates.to_reporting_rate is not null as is_valid
from orders
left join rates
    on orders.currency_code = rates.currency
    and orders.order_date = rates.rate_date
left join {{ ref('stg_snowflake__customers') }} as customers
    on orders.customer_id = customers.customer_id
