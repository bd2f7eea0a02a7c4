{#- One row per customer with a purchase up to as_of_date: the (frequency, recency, T,
    monetary value) summary, in purchase occasions, the BG/NBD and Gamma-Gamma models take, in
    days, computed here so that only this summary crosses into Python. Times use timestamps, so
    two purchases on one day still give recency > 0; T runs to the end of as_of_date. The
    calibration_* columns are the same summary at the start of the backtest holdout (purchases
    before holdout_start_date), for customers who had bought by then; holdout_purchases counts
    their purchases in the holdout.
    The totals come from int_customer_purchases_accumulated, which is kept up to date from new
    orders; only T and the calibration split move with as_of_date, and only customers who bought
    both before and during the holdout are re-read from fct_orders for it. A backfill (var
    as_of_date set) computes the totals from the orders up to that date with the same macro. -#}
-- depends_on: {{ ref('int_customer_purchases_accumulated') }}
-- depends_on: {{ ref('fct_orders') }}
with

reporting_window as (

    select
        as_of_date,
        holdout_start_date,
        cast({{ dbt.dateadd('day', 1, 'as_of_date') }} as timestamp) as observed_until,
        cast(holdout_start_date as timestamp) as calibration_until

    from {{ ref('int_reporting_window') }}

),

{% if as_of_date_is_set() %}
    orders_up_to_as_of as (

        select orders.*
        from {{ ref('fct_orders') }} as orders
        cross join reporting_window
        where orders.ordered_date <= reporting_window.as_of_date

    ),

    all_totals as (

        {{ customer_purchase_totals('orders_up_to_as_of') }}

    ),
{% else %}
    all_totals as (

        select * from {{ ref('int_customer_purchases_accumulated') }}

    ),
{% endif %}

totals as (

    select * from all_totals
    where purchases > 0

),

{#- Customers who bought before and during the holdout: their purchases before it, as
    occasions (orders at one instant count once). -#}
straddling_occasions as (

    select
        orders.customer_id,
        orders.ordered_at,
        sum(orders.net_revenue) as net_revenue

    from {{ ref('fct_orders') }} as orders
    inner join totals on orders.customer_id = totals.customer_id
    cross join reporting_window
    where
        orders.is_purchase
        and totals.first_purchase_at < reporting_window.calibration_until
        and totals.last_purchase_at >= reporting_window.calibration_until
        and orders.ordered_at < reporting_window.calibration_until
    group by orders.customer_id, orders.ordered_at

),

straddling as (

    select
        customer_id,
        count(*) as calibration_purchases,
        max(ordered_at) as calibration_last_purchase_at,
        sum(net_revenue) as calibration_net_revenue

    from straddling_occasions
    group by customer_id

),

calibration as (

    select
        totals.*,
        case
            when totals.first_purchase_at >= reporting_window.calibration_until then 0
            when totals.last_purchase_at < reporting_window.calibration_until
                then totals.purchases
            else straddling.calibration_purchases
        end as calibration_purchases,
        case
            when totals.last_purchase_at < reporting_window.calibration_until
                then totals.last_purchase_at
            else straddling.calibration_last_purchase_at
        end as calibration_last_purchase_at,
        case
            when totals.last_purchase_at < reporting_window.calibration_until
                then totals.net_revenue
            else straddling.calibration_net_revenue
        end as calibration_net_revenue

    from totals
    cross join reporting_window
    left join straddling on totals.customer_id = straddling.customer_id

),

final as (

    select
        calibration.customer_id,
        calibration.first_purchase_at,
        calibration.last_purchase_at,
        calibration.purchases - 1 as frequency,
        {{ dbt.datediff(
            'calibration.first_purchase_at', 'calibration.last_purchase_at', 'second'
        ) }} / cast(86400 as {{ type_double() }}) as recency_days,
        {{ dbt.datediff(
            'calibration.first_purchase_at', 'reporting_window.observed_until', 'second'
        ) }} / cast(86400 as {{ type_double() }}) as t_days,
        cast(
            calibration.net_revenue - calibration.first_purchase_net_revenue
            as {{ type_double() }}
        ) / nullif(calibration.purchases - 1, 0) as monetary_value,
        calibration.calibration_purchases > 0 as is_in_calibration,
        case
            when calibration.calibration_purchases > 0
                then calibration.calibration_purchases - 1
        end as calibration_frequency,
        case
            when calibration.calibration_purchases > 0
                then {{ dbt.datediff(
                    'calibration.first_purchase_at',
                    'calibration.calibration_last_purchase_at',
                    'second'
                ) }} / cast(86400 as {{ type_double() }})
        end as calibration_recency_days,
        case
            when calibration.calibration_purchases > 0
                then {{ dbt.datediff(
                    'calibration.first_purchase_at', 'reporting_window.calibration_until', 'second'
                ) }} / cast(86400 as {{ type_double() }})
        end as calibration_t_days,
        cast(
            calibration.calibration_net_revenue - calibration.first_purchase_net_revenue
            as {{ type_double() }}
        ) / nullif(calibration.calibration_purchases - 1, 0) as calibration_monetary_value,
        case
            when calibration.calibration_purchases > 0
                then calibration.purchases - calibration.calibration_purchases
        end as holdout_purchases

    from calibration
    cross join reporting_window

)

select * from final
