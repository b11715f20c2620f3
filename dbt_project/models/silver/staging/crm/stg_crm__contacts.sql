-- CRM contacts: one per contact_id (bronze is merged by key already), normalised.
select
    contact_id,
    customer_id,
    account_id,
    {{ normalize_email('email') }} as email,
    lower(trim(owner)) as owner_email,
    lower(trim(segment)) as segment,
    lower(trim(lifecycle_stage)) as lifecycle_stage,
    updated_at
from {{ source('crm', 'contacts') }}
