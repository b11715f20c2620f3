{#-
  Record every data test that did not pass (warn, fail, error) in the Delta table
  dq.test_results, one row per test per invocation: the run summary an alert or the watchdog
  reads without parsing dbt's artefacts. Runs as an on-run-end hook.
-#}
{% macro record_test_results(results) %}
  {#- dq.test_results is a Delta table in the lake: recorded by lake (spark) invocations only. -#}
  {%- if execute and target.type == 'spark' -%}
    {%- set rows = [] -%}
    {%- for result in results
          if result.node.resource_type in ('test', 'unit_test') and result.status not in ('pass', 'success', 'skipped') -%}
      {%- set node = result.node -%}
      {%- set tested = [] -%}
      {%- for parent in node.depends_on.nodes if parent.startswith('model.') or parent.startswith('source.') -%}
        {%- do tested.append(parent) -%}
      {%- endfor -%}
      {%- set model = tested | first or '' -%}
      {%- set relation = node.relation_name if node.config.get('store_failures_as') == 'table' else none -%}
      {%- do rows.append("(" ~ [
            "'" ~ invocation_id ~ "'",
            "current_timestamp()",
            "'" ~ node.unique_id ~ "'",
            "'" ~ node.name ~ "'",
            "'" ~ model ~ "'",
            "'" ~ result.status ~ "'",
            "'" ~ (node.config.severity | lower) ~ "'",
            (result.failures if result.failures is not none else 'null') ~ "",
            ("'" ~ relation ~ "'") if relation else "null",
            "'" ~ ((result.message or '') | replace("'", "") | replace("\\", "") | truncate(500)) ~ "'",
          ] | join(", ") ~ ")") -%}
    {%- endfor -%}
    {%- do run_query("create schema if not exists dq") -%}
    {%- do run_query("
        create table if not exists dq.test_results (
            invocation_id string, recorded_at timestamp, unique_id string, test_name string,
            tested_node string, status string, severity string, failures bigint,
            failures_table string, message string
        ) using delta") -%}
    {%- if rows -%}
      {%- do run_query("insert into dq.test_results values " ~ rows | join(", ")) -%}
    {%- endif -%}
    {{ log("dq.test_results: " ~ rows | length ~ " test(s) did not pass", info=true) }}
  {%- endif -%}
{% endmacro %}
