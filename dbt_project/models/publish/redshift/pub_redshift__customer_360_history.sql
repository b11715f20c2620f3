-- customer_360 in Redshift: append-only history, one batch of rows per lake snapshot published.
{{ config(alias='customer_360_history', dist='customer_id', sort=['_batch_id', 'customer_id']) }}

{{ history_batch(source('lake_export', 'customer_360')) }}
