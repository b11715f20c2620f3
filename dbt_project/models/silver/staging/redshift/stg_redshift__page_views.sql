{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='page_view_id',
) }}
-- Page views with the URL split into host, path segments (array) and query parameters (map).
-- Incremental: a run processes only rows of bronze loads newer than the newest already here.
with views as (
    select
        page_view_id,
        session_id,
        customer_id,
        page_url,
        viewed_at,
        referrer,
        _loaded_at
    from {{ source('redshift', 'page_views') }}
    {% if is_incremental() %}
    where _loaded_at > (select coalesce(max(loaded_at), timestamp '1970-01-01') from {{ this }})
    {% endif %}
)

select
    page_view_id,
    session_id,
    customer_id,
    page_url,
    {{ url_host('page_url') }} as url_host,
    {{ url_path('page_url') }} as url_path,
    {{ url_path_segments('page_url') }} as url_path_segments,
    {{ url_query_params('page_url') }} as url_query_params,
    viewed_at,
    cast(viewed_at as date) as view_date,
    referrer,
    {{ url_host('referrer') }} as referrer_host,
    _loaded_at as loaded_at
from views
