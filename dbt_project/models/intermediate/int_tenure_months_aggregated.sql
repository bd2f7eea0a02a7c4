{#- One row per segment (ltv_summary's dimension / dimension_value) and tenure month k (months
    since the acquisition month, 0 = the month of the first purchase), over every complete
    month up to as_of_date: the life table of "still active" pooled over cohorts. A cohort
    counts at tenure month k only once its month k is complete, so exposed_customers are the
    customers of the cohorts old enough, and the still-active share at k does not depend on
    how many customers were acquired when: the same behaviour gives the same curve whatever
    the acquisition calendar. Active at the end of a month and churned in it are
    int_customer_months_classified's states (churn_inactivity_days). -#}
with

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

customer_months as (

    select
        customer_months.*,
        customers.acquisition_channel,
        customers.country_code

    from {{ ref('int_customer_months_classified') }} as customer_months
    inner join {{ ref('stg_shop__customers') }} as customers
        on customer_months.customer_id = customers.customer_id

),

{#- per channel, country and cohort: customers acquired, and how many of their tenure months
    are complete (the cohort's month k is complete when it ends before window_end) -#}
cohort_cells as (

    select
        customer_months.acquisition_channel,
        customer_months.country_code,
        customer_months.cohort_month,
        count(*) as acquired_customers,
        max({{ dbt.datediff(
            'customer_months.cohort_month', 'reporting_window.window_end', 'month'
        ) }}) as complete_months

    from customer_months
    cross join reporting_window
    where customer_months.is_new
    group by
        customer_months.acquisition_channel,
        customer_months.country_code,
        customer_months.cohort_month

),

month_numbers as (

    {{ integer_sequence(month_sequence_size() | int) }}

),

exposure_cells as (

    select
        cohort_cells.acquisition_channel,
        cohort_cells.country_code,
        month_numbers.n as tenure_month,
        cohort_cells.cohort_month,
        cohort_cells.acquired_customers

    from cohort_cells
    inner join month_numbers on cohort_cells.complete_months > month_numbers.n

),

event_cells as (

    select
        customer_months.acquisition_channel,
        customer_months.country_code,
        customer_months.months_since_acquisition as tenure_month,
        sum(case when customer_months.is_active_at_end then 1 else 0 end) as active_customers,
        sum(case when customer_months.is_churned_in_month then 1 else 0 end)
            as churned_customers

    from customer_months
    cross join reporting_window
    where customer_months.month_start < reporting_window.window_end
    group by
        customer_months.acquisition_channel,
        customer_months.country_code,
        customer_months.months_since_acquisition

),

exposure as (

    select
        dimension,
        dimension_value,
        tenure_month,
        count(distinct cohort_month) as cohorts,
        sum(acquired_customers) as exposed_customers

    from ({{ segment_rows('exposure_cells', [
        'tenure_month', 'cohort_month', 'acquired_customers'
    ]) }}) as segmented
    group by dimension, dimension_value, tenure_month

),

events as (

    select
        dimension,
        dimension_value,
        tenure_month,
        sum(active_customers) as active_customers,
        sum(churned_customers) as churned_customers

    from ({{ segment_rows('event_cells', [
        'tenure_month', 'active_customers', 'churned_customers'
    ]) }}) as segmented
    group by dimension, dimension_value, tenure_month

),

final as (

    select
        exposure.dimension,
        exposure.dimension_value,
        exposure.tenure_month,
        exposure.cohorts,
        exposure.exposed_customers,
        coalesce(events.active_customers, 0) as active_customers,
        coalesce(events.churned_customers, 0) as churned_customers,
        cast(coalesce(events.active_customers, 0) as {{ type_double() }})
        / exposure.exposed_customers as still_active_share

    from exposure
    left join events
        on
            exposure.dimension = events.dimension
            and exposure.dimension_value = events.dimension_value
            and exposure.tenure_month = events.tenure_month

)

select * from final
