-- CRM contacts: one per contact_id (bronze is merged by key already), normalised; emails leave
-- as salted hashes (macro `pii`).
select
    contact_id,
    customer_id,
    account_id,
    {{ pii('email', normalize_email('email')) }} as email,
    {{ pii('owner_email', normalize_email('owner')) }} as owner_email,
    lower(trim(segment)) as segment,
    lower(trim(lifecycle_stage)) as lifecycle_stage,
    updated_at
from {{ source('crm', 'contacts') }}
