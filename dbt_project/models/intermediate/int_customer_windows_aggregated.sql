{#- One row per customer with a purchase by as_of_date (zeros when none falls in the window):
    purchases, net revenue and gross margin in the LTV lookback window, and the months they
    were active in it (active at the start or buying: ARPU's denominator), the window's share
    of each spell's listed months (int_customer_spells_classified); and the customer's purchase
    totals up to as_of_date from the same spells, which marts.customers reads.
    A customer's row depends on as_of_date only through month-level values (the as-of month
    the spells are listed up to, the window's months): on DuckDB a night in the same month
    recomputes the touched customers alone, and the first night of a month (or a month's last
    day, which moves the window's end) everyone (macro delete_customers_to_recompute). A table
    on Spark, which has no delete, and for a backfill. -#}
{%- set reporting_window = ref('int_reporting_window') -%}
{%- set build_key = window_build_key(reporting_window) -%}
{%- set rebuilt = target.type == 'spark' or as_of_date_is_set() -%}
{{
    config(
        materialized='table' if rebuilt else 'incremental',
        incremental_strategy=none if rebuilt else 'append',
        on_schema_change='fail',
        pre_hook=(
            "select 1" if rebuilt else "{{ delete_customers_to_recompute("
            ~ "window_build_key(ref('int_reporting_window'))) }}"
        ),
        post_hook="{{ note_month_build(window_build_key(ref('int_reporting_window'))) }}",
    )
}}
with

reporting_window as (

    select
        {{ month_number('window_start') }} as window_start_number,
        {{ month_number('window_end') }} as window_end_number

    from {{ ref('int_reporting_window') }}

),

spells as (

    select
        spells.*,
        reporting_window.window_start_number,
        reporting_window.window_end_number,
        spells.month_number >= reporting_window.window_start_number
        and spells.month_number < reporting_window.window_end_number as is_in_window

    from {{ ref('int_customer_spells_classified') }} as spells
    cross join reporting_window
    {% if is_incremental() %}
        where {{ customers_to_recompute(build_key) }}
    {% endif %}

),

windowed as (

    select
        customer_id,
        {{ as_count('sum(case when is_in_window then purchases else 0 end)') }}
            as window_purchases,
        {{ sum_money('case when is_in_window then net_revenue else 0 end') }}
            as window_net_revenue,
        {{ sum_money('case when is_in_window then gross_margin else 0 end', 4) }}
            as window_gross_margin,
        {#- months [month_number, listed_until] within [window start, window end) -#}
        cast(sum(
            greatest(
                least(listed_until, window_end_number - 1)
                - greatest(month_number, window_start_number)
                + 1,
                0
            )
        ) as {{ dbt.type_bigint() }}) as window_active_months,
        min(first_purchase_in_month) as first_purchase_date,
        max(last_purchase_in_month) as last_purchase_date,
        {{ as_count('sum(purchases)') }} as purchases,
        {{ sum_money('net_revenue') }} as net_revenue,
        {{ sum_money('gross_margin', 4) }} as gross_margin

    from spells
    group by customer_id

)

select * from windowed
