{#- The LTV formulas, each defined once and used by ltv_summary (per segment) and customers
    (per customer). Arguments are SQL expressions; every result is parenthesised. -#}

{#- Double precision on every warehouse (dbt.type_float() is 4-byte FLOAT on DuckDB). -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double{%- endmacro %}

{#- The published types, chosen once for every mart (dbt's and Python's): counts BIGINT (a sum
    of integers is HUGEINT on DuckDB, which many BI drivers mishandle) and money DOUBLE (pandas
    reads DECIMAL as Python Decimal objects). Money is summed exactly as DECIMAL inside the
    models and cast only in a mart's final select; a mart that sums another mart's money casts
    it back with exact_money first, so its sums stay exact and the same in any order. -#}
{% macro as_count(expression) -%}
    cast({{ expression }} as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro as_money(expression) -%}
    cast({{ expression }} as {{ type_double() }})
{%- endmacro %}

{#- A published money double back to the exact decimal it was cast from (scale: its places;
    a double holds any 15 significant digits exactly, so the round trip is lossless). -#}
{% macro exact_money(expression, scale=2) -%}
    cast({{ expression }} as decimal(18, {{ scale }}))
{%- endmacro %}

{#- A per-customer sum of money, exact and 8 bytes wide on DuckDB, which widens any DECIMAL
    sum to 38 digits (a 16-byte HUGEINT) that every later join, sort and write of the 3-9M-row
    intermediate tables then carries (a customer-month grouping of 10M orders 3.3 s instead of
    3.0 s). DECIMAL(18, scale) holds 16 digits before the point for money and 14 for margins
    (scale 4): far beyond any customer's sum, and a sum beyond it fails the build with DuckDB's
    conversion error rather than being cut. On Spark the sum keeps its own type: with ANSI off
    (dbt-spark's session mode) an overflowing cast would give null without a word. -#}
{% macro sum_money(expression, scale=2) -%}
    {{ return(adapter.dispatch('sum_money')(expression, scale)) }}
{%- endmacro %}

{% macro duckdb__sum_money(expression, scale) -%}
    cast(sum({{ expression }}) as decimal(18, {{ scale }}))
{%- endmacro %}

{% macro default__sum_money(expression, scale) -%}
    sum({{ expression }})
{%- endmacro %}

{#- APF: purchases per customer per year, from purchases over the lookback window. -#}
{% macro purchase_frequency(purchases, customers) -%}
    (
        cast({{ purchases }} as {{ type_double() }}) / nullif({{ customers }}, 0)
        * 12.0 / {{ ltv_lookback_months() }}
    )
{%- endmacro %}

{#- Annual churn rate from a monthly churn rate (compounded over 12 months). -#}
{% macro annual_churn_rate(monthly_churn_rate) -%}
    (1 - power(1 - ({{ monthly_churn_rate }}), 12))
{%- endmacro %}

{#- Historical LTV = APV x APF x CL. -#}
{% macro historical_ltv(apv, apf, lifespan_years) -%}
    (({{ apv }}) * ({{ apf }}) * ({{ lifespan_years }}))
{%- endmacro %}

{#- The segments every LTV figure is given for: each row of `relation` (with columns
    acquisition_channel and country_code) once per segment it belongs to, ('overall', 'all'),
    ('acquisition_channel', <channel>) and ('country', <code>), carrying the `carry` columns.
    Used by ltv_summary and the lifespan estimate so both cut the same segments; a new
    dimension is one more branch. -#}
{% macro segment_rows(relation, carry) -%}
    {%- set columns = carry | join(', ') -%}
    select
        'overall' as dimension,
        'all' as dimension_value,
        {{ columns }}
    from {{ relation }}
    union all
    select
        'acquisition_channel' as dimension,
        acquisition_channel as dimension_value,
        {{ columns }}
    from {{ relation }}
    union all
    select
        'country' as dimension,
        country_code as dimension_value,
        {{ columns }}
    from {{ relation }}
{%- endmacro %}

{#- The churn window in whole months (churn_inactivity_days / the mean month, rounded up):
    nobody can be seen to churn in fewer tenure months than this. -#}
{% macro churn_window_months() -%}
    {{- ((churn_inactivity_days() | int) / 30.4375) | round(0, 'ceil') | int -}}
{%- endmacro %}
