{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='order_id',
    on_schema_change='append_new_columns',
    source_is_snapshot=true,
    merge_compare_exclude_columns=['loaded_at'],
) }}
-- Orders, typed and validated. Bronze is the whole Snowflake table, replaced on every load, so
-- the model reads all of it and the MERGE (macros/merge.sql, source_is_snapshot) makes silver
-- equal to it: new orders inserted, changed orders updated whatever their `updated_at` (a
-- watermark `updated_at > max(updated_at)` misses an update stamped at the current maximum, or
-- earlier), orders deleted upstream deleted, unchanged orders not rewritten.
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
