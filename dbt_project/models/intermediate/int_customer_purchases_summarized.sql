{#- One row per customer with a purchase up to as_of_date: the (frequency, recency, T,
    monetary value) summary (in purchase occasions, see below) the BG/NBD and Gamma-Gamma models take, in days, computed here so
    that only this summary crosses into Python. Times use timestamps, so two purchases on one
    day still give recency > 0; T runs to the end of as_of_date. The calibration_* columns are
    the same summary at the start of the backtest holdout (purchases before
    holdout_start_date), for customers who had bought by then; holdout_purchases counts their
    purchases in the holdout. -#}
with

reporting_window as (

    select
        as_of_date,
        holdout_start_date,
        cast({{ dbt.dateadd('day', 1, 'as_of_date') }} as timestamp) as observed_until,
        cast(holdout_start_date as timestamp) as calibration_until

    from {{ ref('int_reporting_window') }}

),

{#- A purchase is an occasion: orders of one customer at the same instant (a split basket)
    count once, with their revenue summed. Otherwise a repeat purchase could have recency 0,
    which no continuous-time model allows (found at 100M generated orders). -#}
occasions as (

    select
        orders.customer_id,
        orders.ordered_at,
        min(orders.ordered_date) as ordered_date,
        sum(orders.net_revenue) as net_revenue

    from {{ ref('fct_orders') }} as orders
    cross join reporting_window
    where orders.is_purchase and orders.ordered_date <= reporting_window.as_of_date
    group by orders.customer_id, orders.ordered_at

),

purchases as (

    select
        occasions.customer_id,
        occasions.ordered_at,
        cast(occasions.net_revenue as {{ type_double() }}) as net_revenue,
        occasions.ordered_date < reporting_window.holdout_start_date as is_calibration,
        row_number() over (
            partition by occasions.customer_id order by occasions.ordered_at
        ) as purchase_number

    from occasions
    cross join reporting_window

),

aggregated as (

    select
        customer_id,
        min(ordered_at) as first_purchase_at,
        max(ordered_at) as last_purchase_at,
        count(*) as purchases,
        sum(case when purchase_number > 1 then net_revenue end) as repeat_net_revenue,
        sum(case when is_calibration then 1 else 0 end) as calibration_purchases,
        max(case when is_calibration then ordered_at end) as calibration_last_purchase_at,
        sum(
            case when is_calibration and purchase_number > 1 then net_revenue end
        ) as calibration_repeat_net_revenue,
        sum(case when is_calibration then 0 else 1 end) as holdout_purchases

    from purchases
    group by customer_id

),

final as (

    select
        aggregated.customer_id,
        aggregated.first_purchase_at,
        aggregated.last_purchase_at,
        aggregated.purchases - 1 as frequency,
        {{ dbt.datediff(
            'aggregated.first_purchase_at', 'aggregated.last_purchase_at', 'second'
        ) }} / cast(86400 as {{ type_double() }}) as recency_days,
        {{ dbt.datediff(
            'aggregated.first_purchase_at', 'reporting_window.observed_until', 'second'
        ) }} / cast(86400 as {{ type_double() }}) as t_days,
        aggregated.repeat_net_revenue / nullif(aggregated.purchases - 1, 0) as monetary_value,
        aggregated.calibration_purchases > 0 as is_in_calibration,
        case
            when aggregated.calibration_purchases > 0
                then aggregated.calibration_purchases - 1
        end as calibration_frequency,
        case
            when aggregated.calibration_purchases > 0
                then {{ dbt.datediff(
                    'aggregated.first_purchase_at',
                    'aggregated.calibration_last_purchase_at',
                    'second'
                ) }} / cast(86400 as {{ type_double() }})
        end as calibration_recency_days,
        case
            when aggregated.calibration_purchases > 0
                then {{ dbt.datediff(
                    'aggregated.first_purchase_at', 'reporting_window.calibration_until', 'second'
                ) }} / cast(86400 as {{ type_double() }})
        end as calibration_t_days,
        aggregated.calibration_repeat_net_revenue
        / nullif(aggregated.calibration_purchases - 1, 0) as calibration_monetary_value,
        case
            when aggregated.calibration_purchases > 0 then aggregated.holdout_purchases
        end as holdout_purchases

    from aggregated
    cross join reporting_window

)

select * from final
