-- product_perf in Snowflake: a mirror of the lake's gold table, kept by MERGE on its grain.
{{ config(alias='product_perf', unique_key=['order_date', 'product_id', 'currency_code']) }}

{{ staged_snapshot(source('lake_export', 'product_perf')) }}
