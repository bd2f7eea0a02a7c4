{#- One row per month from the first acquisition month to the as-of month (months in which
    nobody was active are rows of zeros: customer months without activity are not stored). -#}
with

customer_months as (

    select * from {{ ref('int_customer_months_classified') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

month_numbers as (

    {{ integer_sequence(month_sequence_size() | int) }}

),

months as (

    select
        cast({{ dbt.dateadd('month', 'month_numbers.n', 'first_month.cohort_month') }} as date)
            as month_start,
        reporting_window.as_of_date

    from (select min(cohort_month) as cohort_month from customer_months) as first_month
    cross join reporting_window
    inner join month_numbers
        on month_numbers.n <= {{ dbt.datediff(
            'first_month.cohort_month', 'reporting_window.as_of_date', 'month'
        ) }}

),

counted as (

    select
        month_start,
        sum(case when is_active_at_start then 1 else 0 end) as active_at_start,
        sum(case when is_new then 1 else 0 end) as new_customers,
        sum(case when is_churned_in_month then 1 else 0 end) as churned_customers,
        sum(case when is_reactivated_in_month then 1 else 0 end) as reactivated_customers,
        sum(case when is_active_at_end then 1 else 0 end) as active_at_end

    from customer_months
    group by 1

),

monthly as (

    select
        months.month_start,
        least(
            cast({{ dbt.last_day('months.month_start', 'month') }} as date), months.as_of_date
        ) as month_end,
        coalesce(counted.active_at_start, 0) as active_at_start,
        coalesce(counted.new_customers, 0) as new_customers,
        coalesce(counted.churned_customers, 0) as churned_customers,
        coalesce(counted.reactivated_customers, 0) as reactivated_customers,
        coalesce(counted.active_at_end, 0) as active_at_end

    from months
    left join counted on months.month_start = counted.month_start

),

final as (

    select
        month_start,
        month_end,
        {{ as_count('active_at_start') }} as active_at_start,
        {{ as_count('new_customers') }} as new_customers,
        {{ as_count('churned_customers') }} as churned_customers,
        {{ as_count('reactivated_customers') }} as reactivated_customers,
        {{ as_count('active_at_end') }} as active_at_end,
        cast(churned_customers as {{ type_double() }}) / nullif(active_at_start, 0)
            as churn_rate,
        1 - cast(churned_customers as {{ type_double() }}) / nullif(active_at_start, 0)
            as retention_rate,
        month_end = cast({{ dbt.last_day('month_start', 'month') }} as date) as is_complete_month

    from monthly

)

select * from final
