{#- The date every mart treats as "today". The var is validated as YYYY-MM-DD before it reaches
    SQL text, so configuration can never inject SQL. -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or value | string | trim == '' -%}
        (select max(cast(ordered_at as date)) from {{ ref('stg_shop__orders') }})
    {%- else -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value | string) -%}
            {{ exceptions.raise_compiler_error("var as_of_date must be YYYY-MM-DD, got: " ~ value) }}
        {%- endif -%}
        cast('{{ value }}' as date)
    {%- endif -%}
{%- endmacro %}

{% macro default_margin_rate() -%}
    {%- set value = var('default_margin_rate') -%}
    {%- if value is not number or value < 0 or value > 1 -%}
        {{ exceptions.raise_compiler_error("var default_margin_rate must be a number in [0, 1], got: " ~ value) }}
    {%- endif -%}
    cast({{ value }} as double)
{%- endmacro %}
