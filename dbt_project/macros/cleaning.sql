{#- Cleaning helpers shared by the staging models. Formats and patterns live in dbt_project.yml vars. -#}

{#-
  A date typed in any of the formats the sources use (var `date_formats`), or null when none
  matches: the caller flags the row instead of failing the build (Spark runs with ANSI mode on).
-#}
{% macro parse_date_multi(column) -%}
  coalesce(
    {%- for fmt in var('date_formats') %}
    try_to_date(trim({{ column }}), '{{ fmt }}'),
    {%- endfor %}
    to_date(try_to_timestamp(trim({{ column }}), "yyyy-MM-dd'T'HH:mm:ssX"))
  )
{%- endmacro %}


{#- Emails compared and joined on: trimmed and lower-cased. -#}
{% macro normalize_email(column) -%}
  nullif(lower(trim({{ column }})), '')
{%- endmacro %}


{#- True when an already normalised email looks like one (var `email_regex`). -#}
{% macro is_valid_email(column) -%}
  coalesce(regexp_like({{ column }}, '{{ var("email_regex") }}'), false)
{%- endmacro %}


{#-
  ISO 3166 alpha-2 code from a code or a country name as typed; null when unknown. A code counts
  only if ISO assigned it (var `country_codes`): 'de' is DE, but 'XX' is unknown and 'UK' (not
  an ISO code) is looked up as a name. A name counts only if var `country_names` lists it.
-#}
{% macro country_code(column) -%}
  {%- set names = var('country_names') -%}
  {%- set codes = var('country_codes') -%}
  {%- set codes = codes.split() if codes is string else codes -%}
  {%- set code = 'upper(trim(' ~ column ~ '))' -%}
  case
    when {{ code }} in ('{{ codes | join("', '") }}') then {{ code }}
    {%- for name, iso in names.items() %}
    when lower(regexp_replace(trim({{ column }}), '[^A-Za-z ]', '')) = '{{ name }}' then '{{ iso }}'
    {%- endfor %}
  end
{%- endmacro %}


{#- '; '-joined reasons for the conditions that hold, '' when none: the silver `invalid_reason`. -#}
{% macro reasons(checks) -%}
  concat_ws('; ',
    {%- for condition, reason in checks %}
    case when {{ condition }} then '{{ reason }}' end{{ ',' if not loop.last }}
    {%- endfor %}
  )
{%- endmacro %}
