{#- The date every mart treats as "today". Vars are validated before they reach SQL text, so
    configuration can never inject SQL. -#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if not as_of_date_is_set() -%}
        (select max(cast(ordered_at as date)) from {{ ref('stg_shop__orders') }})
    {%- else -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value | string) -%}
            {{ exceptions.raise_compiler_error("var as_of_date must be YYYY-MM-DD, got: " ~ value) }}
        {%- endif -%}
        cast('{{ value }}' as date)
    {%- endif -%}
{%- endmacro %}

{#- Whether var as_of_date is set (a backfill); unset means the last order date. -#}
{% macro as_of_date_is_set() -%}
    {{ return(not (var('as_of_date', none) is none or var('as_of_date') | string | trim == '')) }}
{%- endmacro %}

{#- A numeric var, checked to lie in [min_value, max_value]; integer=true also demands a whole
    number. Rendered as a plain literal. -#}
{% macro number_var(name, min_value, max_value, integer=false) -%}
    {%- set value = var(name) -%}
    {%- if value is not number or value < min_value or value > max_value
        or (integer and value != (value | int)) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be " ~ ("an integer" if integer else "a number")
            ~ " in [" ~ min_value ~ ", " ~ max_value ~ "], got: " ~ value) }}
    {%- endif -%}
    {{ value | int if integer else value }}
{%- endmacro %}

{% macro default_margin_rate() -%}{{ number_var('default_margin_rate', 0, 1) }}{%- endmacro %}
{% macro churn_inactivity_days() -%}{{ number_var('churn_inactivity_days', 31, 3650, integer=true) }}{%- endmacro %}
{% macro ltv_lookback_months() -%}{{ number_var('ltv_lookback_months', 1, 120, integer=true) }}{%- endmacro %}
{% macro max_lifespan_years() -%}{{ number_var('max_lifespan_years', 0.25, 100) }}{%- endmacro %}
{% macro discount_rate() -%}{{ number_var('discount_rate', 0, 10) }}{%- endmacro %}
{% macro clv_holdout_days() -%}{{ number_var('clv_holdout_days', 1, 3650, integer=true) }}{%- endmacro %}
{% macro incremental_lookback_days() -%}{{ number_var('incremental_lookback_days', 0, 3650, integer=true) }}{%- endmacro %}
{% macro min_months_beyond_churn_window() -%}{{ number_var('min_months_beyond_churn_window', 1, 120, integer=true) }}{%- endmacro %}
{% macro min_churn_events() -%}{{ number_var('min_churn_events', 1, 1000000, integer=true) }}{%- endmacro %}
{% macro ltv_cac_bar() -%}{{ number_var('ltv_cac_bar', 0, 100) }}{%- endmacro %}
{% macro max_extrapolated_share() -%}{{ number_var('max_extrapolated_share', 0, 1) }}{%- endmacro %}
