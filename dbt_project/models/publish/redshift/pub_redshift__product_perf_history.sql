-- product_perf in Redshift: append-only history, one batch of rows per lake snapshot published.
{{ config(alias='product_perf_history', dist='product_id', sort=['_batch_id', 'order_date']) }}

{{ history_batch(source('lake_export', 'product_perf')) }}
