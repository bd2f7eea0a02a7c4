{#- One row per customer with a purchase by as_of_date (zeros when none falls in the window):
    purchases, net revenue and gross margin in the LTV lookback window, and the months they
    were active in it (active at the start or buying: ARPU's denominator), the window's share
    of each spell's listed months (int_customer_spells_classified); and the customer's purchase
    totals up to as_of_date from the same spells, which marts.customers reads. -#}
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

),

windowed as (

    select
        customer_id,
        sum(case when is_in_window then purchases else 0 end) as window_purchases,
        sum(case when is_in_window then net_revenue else 0 end) as window_net_revenue,
        sum(case when is_in_window then gross_margin else 0 end) as window_gross_margin,
        {#- months [month_number, listed_until] within [window start, window end) -#}
        sum(
            greatest(
                least(listed_until, window_end_number - 1)
                - greatest(month_number, window_start_number)
                + 1,
                0
            )
        ) as window_active_months,
        min(first_purchase_in_month) as first_purchase_date,
        max(last_purchase_in_month) as last_purchase_date,
        {{ as_count('sum(purchases)') }} as purchases,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin

    from spells
    group by customer_id

)

select * from windowed
