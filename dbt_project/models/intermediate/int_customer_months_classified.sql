{#- One row per purchasing customer and calendar month in which they purchased or were active
    at the start of the month, up to the as-of month, with purchases and value in the month
    and the customer's state: active at the start (as of the day before the month) and at the
    end (as of the month's last day, or as_of_date in the current month), new, churned or
    reactivated in the month. Active as of day D = a purchase on or before D, the last at most
    churn_inactivity_days before D. So active_at_end = active_at_start - churned + new +
    reactivated, exactly.
    A month in which the customer neither purchased nor was active at the start has every
    flag false and no value (active at the end needs one of the two), so it is left out: the
    table grows with purchase months, not with customers x months since acquisition (about 5x
    fewer rows on the generated shops). Consumers that need every month or cohort cell build
    that grid themselves. Purchases are purchase days (int_purchases_grouped). -#}
with

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

purchases as (

    select
        purchases.customer_id,
        purchases.purchase_date as ordered_date,
        purchases.net_revenue,
        purchases.gross_margin

    from {{ ref('int_purchases_grouped') }} as purchases
    cross join reporting_window
    where purchases.purchase_date <= reporting_window.as_of_date

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

purchase_months as (

    select
        customer_id,
        month_start,
        purchases,
        net_revenue,
        gross_margin,
        last_purchase_in_month,
        min(month_start) over (partition by customer_id) as cohort_month,
        lag(last_purchase_in_month) over (
            partition by customer_id order by month_start
        ) as last_purchase_before_month,
        lead(month_start) over (
            partition by customer_id order by month_start
        ) as next_purchase_month

    from customer_monthly

),

{#- After a purchase month, the months without a purchase that start while the customer is
    still active: up to the month holding the day after the last active day (the churn
    month), before the next purchase month and at most the as-of month. -#}
gap_bounds as (

    select
        purchase_months.customer_id,
        purchase_months.cohort_month,
        purchase_months.month_start,
        purchase_months.last_purchase_in_month,
        {{ dbt.datediff(
            'purchase_months.month_start',
            'least(
                cast(' ~ dbt.date_trunc('month', dbt.dateadd(
                    'day',
                    churn_inactivity_days() ~ ' + 1',
                    'purchase_months.last_purchase_in_month'
                )) ~ ' as date),
                coalesce(
                    cast(' ~ dbt.dateadd(
                        'month', '-1', 'purchase_months.next_purchase_month'
                    ) ~ ' as date),
                    cast(' ~ dbt.date_trunc('month', 'reporting_window.as_of_date') ~ ' as date)
                ),
                cast(' ~ dbt.date_trunc('month', 'reporting_window.as_of_date') ~ ' as date)
            )',
            'month'
        ) }} as gap_months

    from purchase_months
    cross join reporting_window

),

{#- a gap is never longer than the churn window plus a day, spread over the shortest months -#}
month_numbers as (

    select n from ({{ integer_sequence(1000) }}) as numbers
    where n between 1 and {{ ((churn_inactivity_days() | int) + 1) // 28 + 2 }}

),

gap_months as (

    select
        gap_bounds.customer_id,
        gap_bounds.cohort_month,
        cast({{ dbt.dateadd('month', 'month_numbers.n', 'gap_bounds.month_start') }} as date)
            as month_start,
        0 as purchases,
        0 as net_revenue,
        0 as gross_margin,
        cast(null as date) as last_purchase_in_month,
        gap_bounds.last_purchase_in_month as last_purchase_before_month

    from gap_bounds
    inner join month_numbers
        on month_numbers.n between 1 and gap_bounds.gap_months

),

active_months as (

    select
        customer_id,
        cohort_month,
        month_start,
        purchases,
        net_revenue,
        gross_margin,
        last_purchase_in_month,
        last_purchase_before_month

    from purchase_months

    union all

    select
        customer_id,
        cohort_month,
        month_start,
        purchases,
        net_revenue,
        gross_margin,
        last_purchase_in_month,
        last_purchase_before_month

    from gap_months

),

classified as (

    select
        active_months.customer_id,
        active_months.cohort_month,
        {{ dbt.datediff('active_months.cohort_month', 'active_months.month_start', 'month') }}
            as months_since_acquisition,
        active_months.month_start,
        least(
            cast({{ dbt.last_day('active_months.month_start', 'month') }} as date),
            reporting_window.as_of_date
        ) as month_end,
        active_months.purchases,
        active_months.net_revenue,
        active_months.gross_margin,
        active_months.last_purchase_before_month,
        coalesce(
            active_months.last_purchase_in_month, active_months.last_purchase_before_month
        ) as last_purchase_by_month_end,
        active_months.month_start = active_months.cohort_month as is_new,
        coalesce(
            {{ dbt.datediff(
                'active_months.last_purchase_before_month',
                dbt.dateadd('day', -1, 'active_months.month_start'),
                'day'
            ) }} <= {{ churn_inactivity_days() }},
            false
        ) as is_active_at_start

    from active_months
    cross join reporting_window

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
