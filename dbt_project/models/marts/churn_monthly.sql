{#- One row per month from the first acquisition month to the as-of month. Each spell
    (int_customer_spells_classified) adds one to the months it keeps active at their start and
    at their end, as a +1 where the run begins and a -1 after it ends, summed up month by month;
    new, reactivated and churned customers are counted in their month. Months in which nobody
    was active are rows of zeros. -#}
with

spells as (

    select * from {{ ref('int_customer_spells_classified') }}

),

reporting_window as (

    select as_of_date
    from {{ ref('int_reporting_window') }}

),

month_numbers as (

    {{ integer_sequence(month_sequence_size() | int) }}

),

months as (

    select
        cast({{ dbt.dateadd('month', 'month_numbers.n', 'first_month.cohort_month') }} as date)
            as month_start,
        {{ month_number('first_month.cohort_month') }} + month_numbers.n as month_number

    from (select min(cohort_month) as cohort_month from spells) as first_month
    cross join reporting_window
    inner join month_numbers
        on month_numbers.n <= {{ dbt.datediff(
            'first_month.cohort_month', 'reporting_window.as_of_date', 'month'
        ) }}

),

{#- spells that begin in the same month and keep the customer active, end and churn in the
    same months make the same changes: each such shape is counted once, weighted by its spells
    (one scan of the spells instead of one per kind of change; 426 shapes for 7.6M spells at
    10M orders, the model 0.43 s instead of 0.57 s) -#}
shapes as (

    select
        month_number,
        active_at_start_until,
        active_at_end_until,
        churned_month_number,
        is_new,
        is_reactivated_in_month,
        count(*) as spell_count

    from spells
    group by
        month_number,
        active_at_start_until,
        active_at_end_until,
        churned_month_number,
        is_new,
        is_reactivated_in_month

),

changes as (

    select
        month_number + 1 as month_number,
        spell_count as starts_active,
        0 as ends_active,
        0 as new_customers,
        0 as churned_customers,
        0 as reactivated_customers

    from shapes
    where active_at_start_until > month_number
    union all
    select
        active_at_start_until + 1 as month_number,
        -spell_count as starts_active,
        0 as ends_active,
        0 as new_customers,
        0 as churned_customers,
        0 as reactivated_customers

    from shapes
    where active_at_start_until > month_number
    union all
    select
        month_number,
        0 as starts_active,
        spell_count as ends_active,
        case when is_new then spell_count else 0 end as new_customers,
        0 as churned_customers,
        case when is_reactivated_in_month then spell_count else 0 end as reactivated_customers

    from shapes
    union all
    select
        active_at_end_until + 1 as month_number,
        0 as starts_active,
        -spell_count as ends_active,
        0 as new_customers,
        0 as churned_customers,
        0 as reactivated_customers

    from shapes
    union all
    select
        churned_month_number as month_number,
        0 as starts_active,
        0 as ends_active,
        0 as new_customers,
        spell_count as churned_customers,
        0 as reactivated_customers

    from shapes
    where churned_month_number is not null

),

changed as (

    select
        month_number,
        sum(starts_active) as starts_active,
        sum(ends_active) as ends_active,
        sum(new_customers) as new_customers,
        sum(churned_customers) as churned_customers,
        sum(reactivated_customers) as reactivated_customers

    from changes
    group by month_number

),

counted as (

    select
        months.month_start,
        sum(coalesce(changed.starts_active, 0)) over (
            order by months.month_start rows between unbounded preceding and current row
        ) as active_at_start,
        coalesce(changed.new_customers, 0) as new_customers,
        coalesce(changed.churned_customers, 0) as churned_customers,
        coalesce(changed.reactivated_customers, 0) as reactivated_customers,
        sum(coalesce(changed.ends_active, 0)) over (
            order by months.month_start rows between unbounded preceding and current row
        ) as active_at_end

    from months
    left join changed on months.month_number = changed.month_number

),

monthly as (

    select
        counted.*,
        least(
            cast({{ dbt.last_day('counted.month_start', 'month') }} as date),
            reporting_window.as_of_date
        ) as month_end

    from counted
    cross join reporting_window

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
