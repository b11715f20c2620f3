-- Order lines, typed; `line_amount` is in the order's currency. Non-positive quantities are
-- flagged invalid and excluded from amounts downstream.
select
    order_line_id,
    order_id,
    product_id,
    quantity,
    cast(unit_price as decimal(18, 2)) as unit_price,
    upper(trim(currency)) as currency_code,
    cast(quantity * cast(unit_price as decimal(18, 2)) as decimal(18, 2)) as line_amount,
    {{ reasons([
        ("quantity is null or quantity <= 0", "non-positive quantity"),
        ("unit_price is null or unit_price < 0", "missing or negative price"),
        ("product_id is null", "missing product"),
    ]) }} as invalid_reason
from {{ source('snowflake', 'order_lines') }}
