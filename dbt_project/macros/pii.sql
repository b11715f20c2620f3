{#-
  Personal data (docs/governance.md). A column holding it is tagged in its model's yml,
  `meta: {pii: <kind>}` with a kind from var `pii_kinds`, and the model that first reads it from
  bronze selects it through this macro: `{{ pii('email', normalize_email('email')) }} as email`.

  The value becomes a salted, deterministic SHA-256 (hex): equal inputs give equal hashes, so
  silver and gold still join, count and de-duplicate on it, and a null stays null. The salt is
  read from the engine's environment while the query runs (`java_method(... getenv ...)`): it
  never appears in dbt's compiled SQL, logs or lineage events, nor in Spark's plans and error
  messages (a literal, or Spark's `${env:...}` substitution, would print it in both).

  The macro refuses a column its yml does not tag, so SQL and the tags cannot drift apart one way;
  tests/test_pii.py checks the other way (every tagged column holds only hashes or nulls).
-#}
{% macro pii(column, expression=none) -%}
  {%- set expression = expression or column -%}
  {#- A unit test compiles the model under its own node, which has no column tags: the model
      itself is checked when it is built. -#}
  {%- if execute and model.resource_type == 'model' -%}
    {%- set kind = pii_kind(column) -%}
    {%- if kind is none -%}
      {{ exceptions.raise_compiler_error(
          "pii('" ~ column ~ "') in model " ~ model.name ~ ": tag the column in its yml with"
          ~ " `meta: {pii: <kind>}` (one of " ~ var('pii_kinds') | join(', ') ~ ")") }}
    {%- endif -%}
  {%- endif -%}
  {{ pii_hash(expression) }}
{%- endmacro %}


{#- The salted hash itself; Python's lakehouse.core.pii.digest computes the same. -#}
{% macro pii_hash(expression) -%}
  sha2(concat({{ pii_salt() }}, {{ expression }}), 256)
{%- endmacro %}


{% macro pii_salt() -%}
  java_method('java.lang.System', 'getenv', 'LAKEHOUSE_PII_SALT')
{%- endmacro %}


{#- The `meta.pii` kind of a column of the model being compiled, or none. -#}
{% macro pii_kind(column) -%}
  {%- set info = (model.columns or {}).get(column) -%}
  {%- set kind = ((info.meta if info else none) or {}).get('pii') -%}
  {%- if kind is not none and kind not in var('pii_kinds') -%}
    {{ exceptions.raise_compiler_error(
        "column " ~ column ~ " of " ~ model.name ~ ": meta.pii '" ~ kind ~ "' is not one of "
        ~ var('pii_kinds') | join(', ')) }}
  {%- endif -%}
  {{ return(kind) }}
{%- endmacro %}


{#-
  Run first on the lake engine: without the salt every hash would be null and the personal data
  silently gone; with a short one, a dictionary attack is cheap. Fail instead.
-#}
{% macro assert_pii_salt() -%}
  {%- if target.type == 'spark' -%}
    select case
      when {{ pii_salt() }} is null
        then raise_error('LAKEHOUSE_PII_SALT is not set in the environment of the engine: personal data cannot be masked (docs/governance.md)')
      when length({{ pii_salt() }}) < 16
        then raise_error('LAKEHOUSE_PII_SALT is shorter than 16 characters')
      else true
    end as pii_salt_ok
  {%- else -%}
    select 1 as pii_salt_ok
  {%- endif -%}
{%- endmacro %}
