{#- How many months the month sequences of the marts hold (months 0 .. size - 1 from the first
    purchase month): churn_monthly, int_cohort_months_aggregated, int_tenure_months_aggregated.
    A longer history would be cut off without a word, so int_reporting_window.history_months
    is tested against it (tests/int_reporting_window_history_fits_month_sequences.sql) and the
    build fails instead. -#}
{% macro month_sequence_size() -%}1000{%- endmacro %}

{#- Rows n = 0 .. upper_bound - 1 from a cross join of digits: portable SQL, no generate_series
    (DuckDB) or sequence/explode (Spark). upper_bound must be a power of ten. -#}
{% macro integer_sequence(upper_bound) -%}
    {%- set places = (upper_bound | string | length) - 1 -%}
    {%- if 10 ** places != upper_bound -%}
        {{ exceptions.raise_compiler_error("integer_sequence needs a power of ten") }}
    {%- endif -%}
    select
        {% for place in range(places) -%}
        d{{ place }}.digit * {{ 10 ** place }}{% if not loop.last %} + {% endif %}
        {%- endfor %} as n
    from
        {% for place in range(places) -%}
        (
            select 0 as digit union all select 1 union all select 2 union all select 3
            union all select 4 union all select 5 union all select 6 union all select 7
            union all select 8 union all select 9
        ) as d{{ place }}{% if not loop.last %} cross join {% endif %}
        {% endfor %}
{%- endmacro %}

{#- cumulative sum of measure over the rows before and including this one, in order_by, per
    partition_by, divided by denominator: the one definition of "cumulative per customer". -#}
{% macro cumulative_per(measure, denominator, partition_by, order_by) -%}
    sum({{ measure }}) over (
        partition by {{ partition_by }} order by {{ order_by }}
        rows between unbounded preceding and current row
    ) / nullif(cast({{ denominator }} as {{ type_double() }}), 0)
{%- endmacro %}

{#- A month as one integer, year * 12 + month - 1, so that spans of months are differences of
    integers on every engine (int_customer_spells_classified and what reads it). -#}
{% macro month_number(date_expression) -%}
    (extract(year from {{ date_expression }}) * 12 + extract(month from {{ date_expression }}) - 1)
{%- endmacro %}
