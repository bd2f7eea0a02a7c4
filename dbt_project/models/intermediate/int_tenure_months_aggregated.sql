{#- One row per segment (ltv_summary's dimension / dimension_value) and tenure month k (months
    since the acquisition month, 0 = the month of the first purchase), over every complete
    month up to as_of_date: the life table of "still active" pooled over cohorts. A cohort
    counts at tenure month k only once its month k is complete, so exposed_customers are the
    customers of the cohorts old enough, and the still-active share at k does not depend on
    how many customers were acquired when: the same behaviour gives the same curve whatever
    the acquisition calendar. Active at the end of a month and churned in it are
    int_customer_spells_classified's states (churn_inactivity_days): each spell adds one to the
    tenure months it keeps active at their end (a +1 where they begin, a -1 after), summed up
    month by month.
    It reads complete months alone, so on DuckDB a night that changed none of them appends
    nothing: the table is rebuilt only on a new month, a new churn setting, a customer's channel
    or country changed, or an order dated before window_end new, changed or gone (macro
    decide_complete_months_build). A table on Spark and for a backfill. -#}
{{ kept_complete_months_config() }}
-- depends_on: {{ ref('int_customer_purchases_accumulated') }}
with

{# on a night that keeps the table, no row: every CTE below reads this one #}
reporting_window as (

    select
        window_end,
        {{ month_number('window_end') }} as window_end_number

    from {{ ref('int_reporting_window') }}
    {% if is_incremental() %}
        where {{ is_complete_months_rebuild() }}
    {% endif %}

),

{#- spells with the same months, segment and cohort, each counted once with how many they
    are: the readers below weight a shape by its spells (7.6M spells make 83k shapes at 10M
    orders; the model 0.7 s instead of 1.6 s). Grouped after the join with it, so a kept night's
    empty reporting_window empties it before any grouping. -#}
spells as (

    select
        spells.cohort_month,
        spells.is_new,
        spells.months_since_acquisition,
        spells.month_number,
        spells.active_at_end_until,
        spells.churned_month_number,
        reporting_window.window_end_number,
        customers.acquisition_channel,
        customers.country_code,
        spells.month_number - spells.months_since_acquisition as cohort_month_number,
        count(*) as spell_count

    from {{ ref('int_customer_spells_classified') }} as spells
    inner join {{ ref('stg_shop__customers') }} as customers
        on spells.customer_id = customers.customer_id
    {# only spells of complete months count below (a later spell neither begins a complete
        tenure month nor ends one). A join on it, not a cross join: with a kept night's empty
        reporting_window DuckDB then skips the spells (0.49 s of such a night at 10M orders) #}
    inner join reporting_window
        on spells.month_number < reporting_window.window_end_number
    group by
        spells.cohort_month,
        spells.is_new,
        spells.months_since_acquisition,
        spells.month_number,
        spells.active_at_end_until,
        spells.churned_month_number,
        reporting_window.window_end_number,
        customers.acquisition_channel,
        customers.country_code

),

{#- per channel, country and cohort: customers acquired, and how many of their tenure months
    are complete (the cohort's month k is complete when it ends before window_end) -#}
cohort_cells as (

    select
        spells.acquisition_channel,
        spells.country_code,
        spells.cohort_month,
        sum(spells.spell_count) as acquired_customers,
        max({{ dbt.datediff(
            'spells.cohort_month', 'reporting_window.window_end', 'month'
        ) }}) as complete_months

    from spells
    cross join reporting_window
    where spells.is_new
    group by
        spells.acquisition_channel,
        spells.country_code,
        spells.cohort_month

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

{#- tenure months of complete months only (before window_end): +1 active at the end from the
    spell's month, -1 after its last such month, and its churn, each times the shape's spells -#}
tenure_changes as (

    select
        acquisition_channel,
        country_code,
        months_since_acquisition as tenure_month,
        spell_count as ends_active,
        0 as churned

    from spells
    where month_number < window_end_number
    union all
    select
        acquisition_channel,
        country_code,
        least(active_at_end_until, window_end_number - 1) + 1 - cohort_month_number
            as tenure_month,
        -spell_count as ends_active,
        0 as churned

    from spells
    where month_number < window_end_number
    union all
    select
        acquisition_channel,
        country_code,
        churned_month_number - cohort_month_number as tenure_month,
        0 as ends_active,
        spell_count as churned

    from spells
    where churned_month_number < window_end_number

),

event_cells as (

    select
        acquisition_channel,
        country_code,
        tenure_month,
        sum(ends_active) as ends_active,
        sum(churned) as churned_customers

    from tenure_changes
    group by acquisition_channel, country_code, tenure_month

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
        sum(ends_active) as ends_active,
        sum(churned_customers) as churned_customers

    from ({{ segment_rows('event_cells', [
        'tenure_month', 'ends_active', 'churned_customers'
    ]) }}) as segmented
    group by dimension, dimension_value, tenure_month

),

counted as (

    select
        exposure.dimension,
        exposure.dimension_value,
        exposure.tenure_month,
        exposure.cohorts,
        exposure.exposed_customers,
        sum(coalesce(events.ends_active, 0)) over (
            partition by exposure.dimension, exposure.dimension_value
            order by exposure.tenure_month
            rows between unbounded preceding and current row
        ) as active_customers,
        coalesce(events.churned_customers, 0) as churned_customers

    from exposure
    left join events
        on
            exposure.dimension = events.dimension
            and exposure.dimension_value = events.dimension_value
            and exposure.tenure_month = events.tenure_month

),

final as (

    select
        dimension,
        dimension_value,
        tenure_month,
        cohorts,
        exposed_customers,
        active_customers,
        churned_customers,
        cast(active_customers as {{ type_double() }}) / exposed_customers as still_active_share

    from counted

)

select * from final
