with

customer_months as (

    select * from {{ ref('int_customer_months_classified') }}

),

activity as (

    select
        cohort_month,
        months_since_acquisition,
        min(month_start) as month_start,
        sum(case when is_new then 1 else 0 end) as new_customers,
        sum(case when purchases > 0 then 1 else 0 end) as active_customers,
        sum(purchases) as purchases,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin

    from customer_months
    group by 1, 2

),

sized as (

    select
        *,
        sum(new_customers) over (partition by cohort_month) as acquired_customers

    from activity

),

final as (

    select
        cohort_month,
        months_since_acquisition,
        month_start,
        acquired_customers,
        active_customers,
        purchases,
        net_revenue,
        gross_margin,
        {{ cumulative_per(
            'net_revenue', 'acquired_customers', 'cohort_month', 'months_since_acquisition'
        ) }} as cumulative_net_revenue_per_customer,
        {{ cumulative_per(
            'gross_margin', 'acquired_customers', 'cohort_month', 'months_since_acquisition'
        ) }} as cumulative_gross_margin_per_customer

    from sized

)

select * from final
