{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='event_id',
    on_schema_change='append_new_columns',
) }}
-- Events from Kafka, one row per event_id: at-least-once duplicates collapse to the first copy
-- to reach the lake (earliest load, then lowest topic/partition/offset: unique in bronze, so the
-- rule is total); late events are kept and flagged. Incremental on the bronze load time: a
-- duplicate arriving in a later load is dropped (the copy already kept was loaded first), so an
-- incremental run keeps the same copy a full refresh would.
-- Every version of every event type (ingestion/event_schemas) maps to one shape: order_placed v2
-- renamed currency to currency_code (v1 rows have only currency) and added payment_method
-- ('unknown' for a v1 order, which did not carry it; null for events that are not orders).
-- A lake built before a column was added gains it (append_new_columns), null for the rows it
-- already held until a full refresh of this model maps them again.
with arrived as (
    select
        event_id,
        lower(event_type) as event_type,
        cast(_schema_version as int) as schema_version,
        customer_id,
        event_time as event_at,
        session_id,
        order_id,
        page_url,
        cast(amount as decimal(18, 2)) as amount,
        upper(coalesce(currency_code, currency)) as currency_code,
        case
            when lower(event_type) = 'order_placed'
                then coalesce(lower(payment_method), 'unknown')
        end as payment_method,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        kafka_timestamp,
        _loaded_at as loaded_at,
        -- an event stamped over a day before the newest one already seen on its partition
        event_time < max(event_time) over (
            partition by kafka_topic, kafka_partition order by kafka_offset
            rows between unbounded preceding and 1 preceding
        ) - interval 1 day as is_late
    from {{ source('kafka', 'events') }}
    {% if is_incremental() %}
    where _loaded_at > (select coalesce(max(loaded_at), timestamp '1970-01-01') from {{ this }})
    {% endif %}
)

select
    event_id,
    event_type,
    customer_id,
    event_at,
    cast(event_at as date) as event_date,
    session_id,
    order_id,
    page_url,
    amount,
    currency_code,
    payment_method,
    schema_version,
    coalesce(is_late, false) as is_late,
    kafka_partition,
    kafka_offset,
    loaded_at
from arrived
{% if is_incremental() %}
where
    not exists (
        select 1 from {{ this }} as kept
        where kept.event_id = arrived.event_id
    )
{% endif %}
qualify row_number() over (
    partition by event_id order by loaded_at, kafka_topic, kafka_partition, kafka_offset
) = 1
