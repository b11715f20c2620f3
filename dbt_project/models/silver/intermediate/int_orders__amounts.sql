-- Each order with its amount in the order currency, from its valid lines only.
with lines as (
    select
        order_id,
        count(order_line_id) as line_count,
        sum(case when invalid_reason = '' then quantity else 0 end) as units,
        sum(case when invalid_reason = '' then line_amount else 0 end) as order_amount,
        sum(case when invalid_reason = '' then 0 else 1 end) as invalid_line_count
    from {{ ref('stg_snowflake__order_lines') }}
    group by order_id
)

select
    orders.order_id,
    orders.customer_id,
    orders.ordered_at,
    orders.order_date,
    orders.status,
    orders.currency_code,
    coalesce(lines.line_count, 0) as line_count,
    coalesce(lines.invalid_line_count, 0) as invalid_line_count,
    coalesce(lines.units, 0) as units,
    cast(coalesce(lines.order_amount, 0) as decimal(18, 2)) as order_amount,
    orders.invalid_reason
from {{ ref('stg_snowflake__orders') }} as orders
left join lines on orders.order_id = lines.order_id
