-- Web sessions with their duration; customer_id is null for anonymous visitors.
select
    session_id,
    customer_id,
    lower(device) as device,
    lower(browser) as browser,
    started_at,
    ended_at,
    cast(unix_timestamp(ended_at) - unix_timestamp(started_at) as bigint) as duration_seconds
from {{ source('redshift', 'sessions') }}
