{#- One row per acquisition channel and month (spend or acquired customers): CAC, the margin
    the month's cohort has earned per customer so far and its payback month. The predicted
    value against CAC is the Python mart predicted_value_by_channel_month: the predictions
    are made after dbt's build, in the same run (README, "One dbt invocation"). -#}
with

cac as (

    select * from {{ ref('cac_monthly') }}

),

cumulative as (

    select
        *,
        {{ cumulative_per(
            'gross_margin',
            'acquired_customers',
            'acquisition_channel, cohort_month',
            'months_since_acquisition'
        ) }} as cumulative_gross_margin_per_customer

    from {{ ref('int_cohort_months_aggregated') }}

),

to_date as (

    select
        acquisition_channel,
        cohort_month,
        max(months_since_acquisition) as months_observed,
        sum(gross_margin) as gross_margin

    from cumulative
    group by acquisition_channel, cohort_month

),

payback as (

    select
        cumulative.acquisition_channel,
        cumulative.cohort_month,
        min(
            case
                when cumulative.cumulative_gross_margin_per_customer >= cac.cac
                    then cumulative.months_since_acquisition
            end
        ) as payback_month

    from cumulative
    inner join cac
        on
            cumulative.acquisition_channel = cac.acquisition_channel
            and cumulative.cohort_month = cac.month_start
    where cac.cac is not null
    group by cumulative.acquisition_channel, cumulative.cohort_month

),

final as (

    select
        cac.acquisition_channel,
        cac.month_start as cohort_month,
        cac.new_customers as acquired_customers,
        cac.spend,
        cac.cac,
        to_date.months_observed,
        {{ as_money('coalesce(to_date.gross_margin, 0)') }} as gross_margin_to_date,
        cast(coalesce(to_date.gross_margin, 0) as {{ type_double() }})
        / nullif(cac.new_customers, 0) as margin_per_customer_to_date,
        payback.payback_month

    from cac
    left join to_date
        on
            cac.acquisition_channel = to_date.acquisition_channel
            and cac.month_start = to_date.cohort_month
    left join payback
        on
            cac.acquisition_channel = payback.acquisition_channel
            and cac.month_start = payback.cohort_month

)

select * from final
