{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='order_id',
    on_schema_change='append_new_columns',
) }}
-- Orders, typed and validated. Incremental: a run merges only orders changed since the newest
-- `updated_at` already in silver (bronze is a full snapshot each load; most of it is unchanged).
select
    order_id,
    customer_id,
    order_ts as ordered_at,
    cast(order_ts as date) as order_date,
    lower(trim(status)) as status,
    upper(trim(currency)) as currency_code,
    updated_at,
    _loaded_at as loaded_at,
    {{ reasons([
        ("customer_id is null", "missing customer"),
        ("currency is null or not regexp_like(upper(trim(currency)), '^[A-Z]{3}$')", "missing or malformed currency"),
        ("order_ts is null", "missing order time"),
    ]) }} as invalid_reason
from {{ source('snowflake', 'orders') }}
{% if is_incremental() %}
where updated_at > (select coalesce(max(updated_at), timestamp'1970-01-01') from {{ this }})
{% endif %}
