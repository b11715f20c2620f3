-- Products, typed; list prices are in USD upstream.
select
    product_id,
    upper(trim(sku)) as sku,
    trim(name) as product_name,
    lower(trim(category)) as category,
    cast(list_price as decimal(18, 2)) as list_price_usd,
    updated_at
from {{ source('snowflake', 'products') }}
