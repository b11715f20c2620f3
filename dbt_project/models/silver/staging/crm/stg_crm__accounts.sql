-- CRM accounts (companies a contact belongs to).
select
    account_id,
    trim(name) as account_name,
    lower(trim(segment)) as account_segment,
    {{ pii('account_owner_email', normalize_email('owner')) }} as account_owner_email,
    {{ country_code('country') }} as country_code,
    updated_at
from {{ source('crm', 'accounts') }}
