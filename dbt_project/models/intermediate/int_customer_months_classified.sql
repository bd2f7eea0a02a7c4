{#- One row per purchasing customer and calendar month, from their first purchase month to the
    as-of month, with purchases and value in the month and the customer's state:
    active at the start (as of the day before the month) and at the end (as of the month's last
    day, or as_of_date in the current month), new, churned or reactivated in the month.
    Active as of day D = a purchase on or before D, the last at most churn_inactivity_days
    before D. So active_at_end = active_at_start - churned + new + reactivated, exactly.
    Reads the fct_orders mart (not staging) so history is not re-valued on every run. -#}
with

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

purchases as (

    select
        orders.customer_id,
        orders.ordered_date,
        orders.net_revenue,
        orders.gross_margin

    from {{ ref('fct_orders') }} as orders
    cross join reporting_window
    where orders.is_purchase and orders.ordered_date <= reporting_window.as_of_date

),

customer_monthly as (

    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'ordered_date') }} as date) as month_start,
        count(*) as purchases,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin,
        max(ordered_date) as last_purchase_in_month

    from purchases
    group by 1, 2

),

cohorts as (

    select
        customer_id,
        min(month_start) as cohort_month

    from customer_monthly
    group by 1

),

month_numbers as (

    {{ integer_sequence(1000) }}

),

spine as (

    select
        cohorts.customer_id,
        cohorts.cohort_month,
        month_numbers.n as months_since_acquisition,
        cast({{ dbt.dateadd('month', 'month_numbers.n', 'cohorts.cohort_month') }} as date)
            as month_start,
        reporting_window.as_of_date

    from cohorts
    cross join reporting_window
    inner join month_numbers
        on month_numbers.n <= {{ dbt.datediff(
            'cohorts.cohort_month', 'reporting_window.as_of_date', 'month'
        ) }}

),

joined as (

    select
        spine.customer_id,
        spine.cohort_month,
        spine.months_since_acquisition,
        spine.month_start,
        least(
            cast({{ dbt.last_day('spine.month_start', 'month') }} as date), spine.as_of_date
        ) as month_end,
        coalesce(customer_monthly.purchases, 0) as purchases,
        coalesce(customer_monthly.net_revenue, 0) as net_revenue,
        coalesce(customer_monthly.gross_margin, 0) as gross_margin,
        customer_monthly.last_purchase_in_month,
        max(customer_monthly.last_purchase_in_month) over (
            partition by spine.customer_id order by spine.month_start
            rows between unbounded preceding and 1 preceding
        ) as last_purchase_before_month

    from spine
    left join customer_monthly
        on
            spine.customer_id = customer_monthly.customer_id
            and spine.month_start = customer_monthly.month_start

),

classified as (

    select
        *,
        coalesce(last_purchase_in_month, last_purchase_before_month)
            as last_purchase_by_month_end,
        months_since_acquisition = 0 as is_new,
        coalesce(
            {{ dbt.datediff(
                'last_purchase_before_month', dbt.dateadd('day', -1, 'month_start'), 'day'
            ) }} <= {{ churn_inactivity_days() }},
            false
        ) as is_active_at_start

    from joined

),

final as (

    select
        customer_id,
        cohort_month,
        months_since_acquisition,
        month_start,
        month_end,
        purchases,
        net_revenue,
        gross_margin,
        last_purchase_before_month,
        last_purchase_by_month_end,
        is_new,
        is_active_at_start,
        {{ dbt.datediff('last_purchase_by_month_end', 'month_end', 'day') }}
        <= {{ churn_inactivity_days() }} as is_active_at_end,
        is_active_at_start
        and {{ dbt.datediff('last_purchase_by_month_end', 'month_end', 'day') }}
        > {{ churn_inactivity_days() }} as is_churned_in_month,
        not is_new and not is_active_at_start and purchases > 0 as is_reactivated_in_month

    from classified

)

select * from final
