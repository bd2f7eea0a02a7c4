{#- The LTV formulas, each defined once and used by ltv_summary (per segment) and customers
    (per customer). Arguments are SQL expressions; every result is parenthesised. -#}

{#- Double precision on every warehouse (dbt.type_float() is 4-byte FLOAT on DuckDB). -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double{%- endmacro %}

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

{#- CL: customer lifespan in years, 1 / annual churn, capped at max_lifespan_years. -#}
{% macro customer_lifespan_years(annual_churn_rate) -%}
    (
        case
            when {{ annual_churn_rate }} > 0
                then least(1.0 / {{ annual_churn_rate }}, {{ max_lifespan_years() }})
            else {{ max_lifespan_years() }}
        end
    )
{%- endmacro %}

{#- Historical LTV = APV x APF x CL. -#}
{% macro historical_ltv(apv, apf, lifespan_years) -%}
    (({{ apv }}) * ({{ apf }}) * ({{ lifespan_years }}))
{%- endmacro %}
