-- One row per customer, joining all five sources: the shop profile (Snowflake), the CRM contact
-- and account (CRM), web behaviour (Redshift), recent event activity (Kafka), orders and lifetime
-- value in the reporting currency (Snowflake x FX), first/last seen, and data-quality flags.
{% set window_days = var('activity_window_days') %}

with customers as (
    select
        customer_id,
        email,
        has_valid_email,
        full_name,
        country_code,
        signup_date,
        invalid_reason
    from {{ ref('stg_snowflake__customers') }}
),

crm as (
    select
        contacts.customer_id,
        contacts.contact_id,
        contacts.owner_email,
        contacts.segment,
        contacts.lifecycle_stage,
        accounts.account_name,
        accounts.account_segment
    from {{ ref('stg_crm__contacts') }} as contacts
    left join {{ ref('stg_crm__accounts') }} as accounts
        on contacts.account_id = accounts.account_id
    where contacts.customer_id is not null
    -- Tie-break (yml meta.tie_break): the newest contact, and of contacts updated at the same
    -- instant the one with the smallest contact_id (unique), so a rebuild picks the same one.
    qualify row_number() over (
        partition by contacts.customer_id
        order by contacts.updated_at desc nulls last, contacts.contact_id
    ) = 1
),

web as (
    select
        sessions.customer_id,
        count(distinct sessions.session_id) as web_sessions,
        min(sessions.started_at) as first_visit_at,
        max(sessions.ended_at) as last_visit_at,
        -- deterministic mode: of devices used equally often, the alphabetically first
        mode(sessions.device, true) as top_device
    from {{ ref('stg_redshift__sessions') }} as sessions
    where sessions.customer_id is not null
    group by sessions.customer_id
),

views as (
    select customer_id, count(page_view_id) as page_views
    from {{ ref('stg_redshift__page_views') }}
    where customer_id is not null
    group by customer_id
),

newest_event as (
    select max(event_at) as newest_event_at from {{ ref('stg_kafka__events') }}
),

events as (
    select
        events.customer_id,
        count(events.event_id) as events,
        count_if(events.event_at > newest_event.newest_event_at - interval {{ window_days }} days)
            as events_recent,
        count_if(events.event_type = 'click') as clicks,
        count_if(events.event_type = 'checkout_started') as checkouts_started,
        min(events.event_at) as first_event_at,
        max(events.event_at) as last_event_at
    from {{ ref('stg_kafka__events') }} as events
    cross join newest_event
    where events.customer_id is not null
    group by events.customer_id
),

orders as (
    select
        customer_id,
        count(order_id) as orders,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        sum(case when status <> 'returned' and is_valid then order_amount_reporting end)
            as lifetime_value,
        count_if(is_fx_missing) as orders_missing_fx
    from {{ ref('orders') }}
    group by customer_id
)

select
    customers.customer_id,
    customers.email,
    customers.full_name,
    customers.country_code,
    customers.signup_date,
    crm.contact_id as crm_contact_id,
    crm.owner_email as crm_owner_email,
    crm.segment as crm_segment,
    crm.lifecycle_stage as crm_lifecycle_stage,
    crm.account_name as crm_account_name,
    crm.account_segment as crm_account_segment,
    coalesce(web.web_sessions, 0) as web_sessions,
    coalesce(views.page_views, 0) as web_page_views,
    web.top_device as web_top_device,
    web.last_visit_at as web_last_visit_at,
    coalesce(events.events, 0) as events,
    coalesce(events.events_recent, 0) as events_recent,
    coalesce(events.clicks, 0) as event_clicks,
    coalesce(events.checkouts_started, 0) as event_checkouts_started,
    events.last_event_at,
    coalesce(orders.orders, 0) as orders,
    orders.first_order_at,
    orders.last_order_at,
    '{{ var("reporting_currency") }}' as reporting_currency,
    cast(coalesce(orders.lifetime_value, 0) as decimal(18, 2)) as lifetime_value,
    least(
        cast(customers.signup_date as timestamp), orders.first_order_at,
        web.first_visit_at, events.first_event_at
    ) as first_seen_at,
    greatest(orders.last_order_at, web.last_visit_at, events.last_event_at) as last_seen_at,
    customers.has_valid_email,
    crm.contact_id is not null as has_crm_contact,
    coalesce(orders.orders_missing_fx, 0) > 0 as has_orders_missing_fx,
    customers.invalid_reason as profile_issues
from customers
left join crm on customers.customer_id = crm.customer_id
left join web on customers.customer_id = web.customer_id
left join views on customers.customer_id = views.customer_id
left join events on customers.customer_id = events.customer_id
left join orders on customers.customer_id = orders.customer_id
