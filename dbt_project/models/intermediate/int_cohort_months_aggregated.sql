{#- One row per acquisition channel, cohort month and month since acquisition: what the
    cohort's customers of that channel did in the month (macro cohort_month_cells), with every
    month of every cohort up to the as-of month, active or not. cohort_activity sums it over
    channels; ltv_cac_by_channel and the Python LTV curves use it per channel. The complete
    months come from int_complete_cohort_months_aggregated, kept between nights; only the
    as-of month is grouped here each night. -#}
with

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

{#- the complete months' cells, kept between nights, and the as-of month's (none when
    as_of_date is a month's last day: window_end is then the next month's first day) -#}
aggregated as (

    select * from {{ ref('int_complete_cohort_months_aggregated') }}
    union all
    {{ cohort_month_cells('spells.month_start >= reporting_window.window_end') }}

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
