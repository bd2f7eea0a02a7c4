{#- One row per acquisition channel, cohort month and month since acquisition: what the
    cohort's customers of that channel did in the month. cohort_activity sums it over
    channels; ltv_cac_by_channel and the Python LTV curves use it per channel. -#}
with

purchase_months as (

    select * from {{ ref('int_customer_spells_classified') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

aggregated as (

    select
        customers.acquisition_channel,
        purchase_months.cohort_month,
        purchase_months.months_since_acquisition,
        sum(case when purchase_months.is_new then 1 else 0 end) as new_customers,
        sum(case when purchase_months.purchases > 0 then 1 else 0 end) as active_customers,
        sum(purchase_months.purchases) as purchases,
        sum(purchase_months.net_revenue) as net_revenue,
        sum(purchase_months.gross_margin) as gross_margin

    from purchase_months
    inner join customers on purchase_months.customer_id = customers.customer_id
    group by
        customers.acquisition_channel,
        purchase_months.cohort_month,
        purchase_months.months_since_acquisition

),

month_numbers as (

    {{ integer_sequence(month_sequence_size() | int) }}

),

{#- every month of every channel's cohort up to the as-of month, active or not -#}
grid as (

    select
        cohorts.acquisition_channel,
        cohorts.cohort_month,
        month_numbers.n as months_since_acquisition,
        cast({{ dbt.dateadd('month', 'month_numbers.n', 'cohorts.cohort_month') }} as date)
            as month_start,
        cast({{ dbt.dateadd('month', 'month_numbers.n', 'cohorts.cohort_month') }} as date)
        < reporting_window.window_end as is_complete_month

    from aggregated as cohorts
    cross join reporting_window
    inner join month_numbers
        on month_numbers.n <= {{ dbt.datediff(
            'cohorts.cohort_month', 'reporting_window.as_of_date', 'month'
        ) }}
    where cohorts.months_since_acquisition = 0

),

sized as (

    select
        grid.acquisition_channel,
        grid.cohort_month,
        grid.months_since_acquisition,
        grid.month_start,
        grid.is_complete_month,
        coalesce(aggregated.new_customers, 0) as new_customers,
        coalesce(aggregated.active_customers, 0) as active_customers,
        coalesce(aggregated.purchases, 0) as purchases,
        coalesce(aggregated.net_revenue, 0) as net_revenue,
        coalesce(aggregated.gross_margin, 0) as gross_margin,
        sum(coalesce(aggregated.new_customers, 0)) over (
            partition by grid.acquisition_channel, grid.cohort_month
        ) as acquired_customers

    from grid
    left join aggregated
        on
            grid.acquisition_channel = aggregated.acquisition_channel
            and grid.cohort_month = aggregated.cohort_month
            and grid.months_since_acquisition = aggregated.months_since_acquisition

)

select * from sized
