{#- URL parsing for web behaviour. All null-safe: a malformed URL yields nulls, never an error. -#}

{% macro url_host(column) -%}
  lower(try_parse_url({{ column }}, 'HOST'))
{%- endmacro %}

{#- The path, '/' for a bare host; null when the value is not a URL at all. -#}
{% macro url_path(column) -%}
  coalesce(
    nullif(try_parse_url({{ column }}, 'PATH'), ''),
    case when try_parse_url({{ column }}, 'HOST') is not null then '/' end
  )
{%- endmacro %}

{#- '/products/books/BOO-00042' -> ['products', 'books', 'BOO-00042'] -#}
{% macro url_path_segments(column) -%}
  filter(split({{ url_path(column) }}, '/'), segment -> segment != '')
{%- endmacro %}

{#- 'utm_source=google&q=usb%20cable' -> {'utm_source': 'google', 'q': 'usb cable'} -#}
{% macro url_query_params(column) -%}
  transform_values(
    coalesce(
      str_to_map(nullif(try_parse_url({{ column }}, 'QUERY'), ''), '&', '='),
      map()
    ),
    (key, value) -> try_url_decode(value)
  )
{%- endmacro %}
