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

cohorts as (

    select * from {{ ref('ltv_cac_by_channel_month') }}

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
        sum(case when cac is not null then 1 else 0 end) as cohorts,
        sum(case when payback_month is not null then 1 else 0 end) as cohorts_paid_back,
        median(payback_month) as median_payback_month,
        sum(gross_margin_to_date) as gross_margin_to_date,
        sum(predicted_clv) as predicted_clv

    from cohorts
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
        coalesce(channel_payback.cohorts_paid_back, 0) as cohorts_paid_back,
        cast(channel_payback.predicted_clv as {{ type_double() }})
        / nullif(channel_cac.new_customers, 0) as predicted_clv_per_customer,
        cast(
            channel_payback.gross_margin_to_date + channel_payback.predicted_clv
            as {{ type_double() }}
        )
        / nullif(channel_cac.new_customers, 0)
        / nullif(channel_cac.cac, 0) as predicted_value_to_cac

    from channel_cac
    left join channel_ltv on channel_cac.acquisition_channel = channel_ltv.acquisition_channel
    left join channel_payback
        on channel_cac.acquisition_channel = channel_payback.acquisition_channel

)

select * from final
