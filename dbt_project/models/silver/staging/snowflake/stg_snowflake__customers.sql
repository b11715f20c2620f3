-- Customers, one row per customer_id: the latest version by updated_at, normalised and
-- validated. Invalid rows stay (flagged with the reasons) so nothing disappears between layers.
-- Personal data is validated here, then leaves as salted hashes (macro `pii`, yml `meta.pii`).
-- Columns are listed, never `*`: column lineage (OpenLineage) is parsed from this SQL.
with latest as (
    select
        customer_id,
        email,
        first_name,
        last_name,
        country,
        phone,
        signup_date,
        updated_at,
        _loaded_at
    from {{ source('snowflake', 'customers') }}
    -- Tie-break (yml meta.tie_break): the latest updated_at, then every other column read
    -- here, so two copies that still tie are equal in all silver keeps and either is the same.
    qualify row_number() over (
        partition by customer_id
        order by
            updated_at desc nulls last, email nulls last, first_name, last_name, country,
            phone, signup_date, _loaded_at
    ) = 1
),

cleaned as (
    select
        customer_id,
        {{ normalize_email('email') }} as email,
        trim(first_name) as first_name,
        trim(last_name) as last_name,
        {{ country_code('country') }} as country_code,
        trim(phone) as phone,
        {{ parse_date_multi('signup_date') }} as signup_date,
        signup_date as signup_date_raw,
        updated_at,
        _loaded_at as loaded_at
    from latest
)

select
    customer_id,
    {{ pii('email') }} as email,
    {{ is_valid_email('email') }} as has_valid_email,
    {{ pii('first_name') }} as first_name,
    {{ pii('last_name') }} as last_name,
    {{ pii('full_name', "concat_ws(' ', first_name, last_name)") }} as full_name,
    country_code,
    {{ pii('phone') }} as phone,
    signup_date,
    signup_date_raw,
    updated_at,
    loaded_at,
    {{ reasons([
        ("email is null", "missing email"),
        ("email is not null and not " ~ is_valid_email('email'), "malformed email"),
        ("country_code is null", "unknown country"),
        ("signup_date is null", "unparseable signup_date"),
    ]) }} as invalid_reason
from cleaned
