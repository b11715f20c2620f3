-- FX rates as published, typed and normalised: ISO codes upper-case, rates as exact decimals.
select
    cast(rate_date as date) as rate_date,
    upper(trim(base_currency)) as base_currency,
    upper(trim(currency)) as quote_currency,
    cast(rate as decimal(18, 8)) as units_per_base,
    _dlt_load_id as dlt_load_id
from {{ source('fx', 'rates') }}
