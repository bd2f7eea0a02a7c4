with

cac as (

    select * from {{ ref('cac_monthly') }}

),

channel_ltv as (

    select
        dimension_value as acquisition_channel,
        margin_ltv

    from {{ ref('ltv_summary') }}
    where dimension = 'acquisition_channel'

),

channel_cohort_months as (

    select * from {{ ref('int_cohort_months_aggregated') }}

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

    from channel_cohort_months

),

cohort_payback as (

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

channel_cac as (

    select
        acquisition_channel,
        sum(spend) as spend,
        sum(new_customers) as new_customers,
        cast(sum(spend) as {{ type_double() }}) / nullif(sum(new_customers), 0) as cac

    from cac
    group by acquisition_channel

),

channel_payback as (

    select
        acquisition_channel,
        count(*) as cohorts,
        sum(case when payback_month is not null then 1 else 0 end) as cohorts_paid_back,
        median(payback_month) as median_payback_month

    from cohort_payback
    group by acquisition_channel

),

final as (

    select
        channel_cac.acquisition_channel,
        channel_cac.new_customers as customers,
        channel_cac.spend,
        channel_cac.cac,
        channel_ltv.margin_ltv,
        channel_payback.median_payback_month,
        channel_ltv.margin_ltv / nullif(channel_cac.cac, 0) as ltv_to_cac,
        coalesce(channel_ltv.margin_ltv / nullif(channel_cac.cac, 0) >= 3, false)
            as is_above_ltv_cac_bar,
        coalesce(channel_payback.cohorts, 0) as cohorts,
        coalesce(channel_payback.cohorts_paid_back, 0) as cohorts_paid_back

    from channel_cac
    left join channel_ltv on channel_cac.acquisition_channel = channel_ltv.acquisition_channel
    left join channel_payback
        on channel_cac.acquisition_channel = channel_payback.acquisition_channel

)

select * from final
