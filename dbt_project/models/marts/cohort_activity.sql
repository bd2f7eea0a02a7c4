with

channel_cohort_months as (

    select * from {{ ref('int_cohort_months_aggregated') }}

),

activity as (

    select
        cohort_month,
        months_since_acquisition,
        min(month_start) as month_start,
        sum(acquired_customers) as acquired_customers,
        sum(active_customers) as active_customers,
        sum(purchases) as purchases,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin

    from channel_cohort_months
    group by cohort_month, months_since_acquisition

),

final as (

    select
        cohort_month,
        months_since_acquisition,
        month_start,
        {{ as_count('acquired_customers') }} as acquired_customers,
        {{ as_count('active_customers') }} as active_customers,
        {{ as_count('purchases') }} as purchases,
        {{ as_money('net_revenue') }} as net_revenue,
        {{ as_money('gross_margin') }} as gross_margin,
        {{ cumulative_per(
            'net_revenue', 'acquired_customers', 'cohort_month', 'months_since_acquisition'
        ) }} as cumulative_net_revenue_per_customer,
        {{ cumulative_per(
            'gross_margin', 'acquired_customers', 'cohort_month', 'months_since_acquisition'
        ) }} as cumulative_gross_margin_per_customer

    from activity

)

select * from final
