with

customer_months as (

    select * from {{ ref('int_customer_months_classified') }}

),

monthly as (

    select
        month_start,
        max(month_end) as month_end,
        sum(case when is_active_at_start then 1 else 0 end) as active_at_start,
        sum(case when is_new then 1 else 0 end) as new_customers,
        sum(case when is_churned_in_month then 1 else 0 end) as churned_customers,
        sum(case when is_reactivated_in_month then 1 else 0 end) as reactivated_customers,
        sum(case when is_active_at_end then 1 else 0 end) as active_at_end

    from customer_months
    group by 1

),

final as (

    select
        month_start,
        month_end,
        active_at_start,
        new_customers,
        churned_customers,
        reactivated_customers,
        active_at_end,
        cast(churned_customers as {{ type_double() }}) / nullif(active_at_start, 0)
            as churn_rate,
        1 - cast(churned_customers as {{ type_double() }}) / nullif(active_at_start, 0)
            as retention_rate,
        month_end = cast({{ dbt.last_day('month_start', 'month') }} as date) as is_complete_month

    from monthly

)

select * from final
