-- customer_360 in Snowflake: a mirror of the lake's gold table, kept by MERGE on customer_id.
{{ config(alias='customer_360', unique_key='customer_id') }}

{{ staged_snapshot(source('lake_export', 'customer_360')) }}
