{#- One row per customer with a purchase by as_of_date (zeros when none falls in the window):
    purchases, net revenue and gross margin in the LTV lookback window, and the months they
    were active in it (active at the start or buying: ARPU's denominator). -#}
with

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

customer_months as (

    select
        customer_months.*,
        customer_months.month_start >= reporting_window.window_start
        and customer_months.month_start < reporting_window.window_end as is_in_window

    from {{ ref('int_customer_months_classified') }} as customer_months
    cross join reporting_window

),

windowed as (

    select
        customer_id,
        sum(case when is_in_window then purchases else 0 end) as window_purchases,
        sum(case when is_in_window then net_revenue else 0 end) as window_net_revenue,
        sum(case when is_in_window then gross_margin else 0 end) as window_gross_margin,
        sum(
            case when is_in_window and (is_active_at_start or purchases > 0) then 1 else 0 end
        ) as window_active_months

    from customer_months
    group by customer_id

)

select * from windowed
