-- Product performance per day and order currency: units and revenue in the order currency and
-- in the reporting currency (FX as-of the order date). Valid lines of valid orders only.
with lines as (
    select
        order_id,
        product_id,
        quantity,
        line_amount
    from {{ ref('stg_snowflake__order_lines') }}
    where invalid_reason = ''
),

orders as (
    select order_id, order_date, currency_code, fx_rate, is_fx_missing
    from {{ ref('orders') }}
    where not is_orphan_customer and currency_code is not null
)

select
    orders.order_date,
    lines.product_id,
    orders.currency_code,
    products.category,
    count(distinct orders.order_id) as orders,
    cast(sum(lines.quantity) as bigint) as units,
    cast(sum(lines.line_amount) as decimal(18, 2)) as revenue,
    '{{ var("reporting_currency") }}' as reporting_currency,
    -- null, not a partial sum, when an order of the row has no rate (sum would skip it); the
    -- rate depends on (currency, day) only, so that is every order of the row or none
    case
        when not max(orders.is_fx_missing)
            then cast(sum(lines.line_amount * orders.fx_rate) as decimal(18, 2))
    end as revenue_reporting,
    max(orders.is_fx_missing) as is_fx_missing
from lines
inner join orders on lines.order_id = orders.order_id
left join {{ ref('stg_snowflake__products') }} as products
    on lines.product_id = products.product_id
group by orders.order_date, lines.product_id, orders.currency_code, products.category
