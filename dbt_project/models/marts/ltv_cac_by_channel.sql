with

cac as (

    select * from {{ ref('cac_monthly') }}

),

channel_ltv as (

    select
        dimension_value as acquisition_channel,
        margin_ltv,
        unreliable_reason

    from {{ ref('ltv_summary') }}
    where dimension = 'acquisition_channel'

),

cohorts as (

    select * from {{ ref('ltv_cac_by_channel_month') }}

),

channel_cac as (

    select
        acquisition_channel,
        sum({{ exact_money('spend') }}) as spend,
        sum(new_customers) as new_customers,
        cast(nullif(sum({{ exact_money('spend') }}), 0) as {{ type_double() }})
        / nullif(sum(new_customers), 0) as cac

    from cac
    group by acquisition_channel

),

channel_payback as (

    select
        acquisition_channel,
        sum(case when cac is not null then 1 else 0 end) as cohorts,
        sum(case when payback_month is not null then 1 else 0 end) as cohorts_paid_back,
        {#- cohorts that never paid back count as paying back later than any that did -#}
        median(case when cac is not null then coalesce(payback_month, 1000000) end)
            as median_payback_month

    from cohorts
    group by acquisition_channel

),

final as (

    select
        channel_cac.acquisition_channel,
        {{ as_count('channel_cac.new_customers') }} as customers,
        {{ as_money('channel_cac.spend') }} as spend,
        channel_cac.cac,
        channel_ltv.margin_ltv,
        {#- with half or more never paid back, the median is not a month -#}
        case
            when 2 * channel_payback.cohorts_paid_back > channel_payback.cohorts
                then channel_payback.median_payback_month
        end as median_payback_month,
        channel_ltv.margin_ltv / channel_cac.cac as ltv_to_cac,
        channel_ltv.margin_ltv / channel_cac.cac >= {{ ltv_cac_bar() }} as is_above_ltv_cac_bar,
        case
            when channel_ltv.margin_ltv / channel_cac.cac >= {{ ltv_cac_bar() }} then 'above_bar'
            when channel_ltv.margin_ltv / channel_cac.cac < {{ ltv_cac_bar() }} then 'below_bar'
            else 'unknown'
        end as ltv_to_cac_status,
        case
            when channel_cac.cac is null and coalesce(channel_cac.spend, 0) = 0
                then 'no marketing spend'
            when channel_cac.cac is null then 'no customers acquired'
            when channel_ltv.margin_ltv is null
                then coalesce(channel_ltv.unreliable_reason, 'no LTV for the channel')
        end as ltv_to_cac_unknown_reason,
        {{ as_count('coalesce(channel_payback.cohorts, 0)') }} as cohorts,
        {{ as_count('coalesce(channel_payback.cohorts_paid_back, 0)') }}
            as cohorts_paid_back,
        cast(channel_payback.cohorts_paid_back as {{ type_double() }})
        / nullif(channel_payback.cohorts, 0) as share_of_cohorts_paid_back

    from channel_cac
    left join channel_ltv on channel_cac.acquisition_channel = channel_ltv.acquisition_channel
    left join channel_payback
        on channel_cac.acquisition_channel = channel_payback.acquisition_channel

)

select * from final
