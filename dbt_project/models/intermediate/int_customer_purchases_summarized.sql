{#- One row per customer with a purchase up to as_of_date: the (frequency, recency, T,
    monetary value) summary the BG/NBD and Gamma-Gamma models take, in purchases (purchase
    days, macro purchase_days) and whole days, computed here so that only this summary crosses
    into Python. Time is counted as lifetimes and the published fits count it: recency = days
    from the first to the last purchase date, T = days from the first purchase date to
    as_of_date (a purchase on as_of_date is in the period). The calibration_* columns are the
    same summary at the end of the day before the backtest holdout (holdout_start_date), for
    customers who had bought by then; holdout_purchases counts their purchases in the holdout.
    The totals come from int_customer_purchases_accumulated, which is kept up to date from new
    orders; only T and the calibration split move with as_of_date, and only customers who bought
    both before and during the holdout are re-read for it. A backfill (var as_of_date set)
    computes the totals from the orders up to that date with the same macro. -#}
-- depends_on: {{ ref('int_customer_purchases_accumulated') }}
-- depends_on: {{ ref('int_orders_valued') }}
with

reporting_window as (

    select
        as_of_date,
        holdout_start_date,
        cast({{ dbt.dateadd('day', -1, 'holdout_start_date') }} as date) as calibration_end_date

    from {{ ref('int_reporting_window') }}

),

{% if as_of_date_is_set() %}
    orders_up_to_as_of as (

        select orders.*
        from {{ ref('int_orders_valued') }} as orders
        cross join reporting_window
        where orders.ordered_date <= reporting_window.as_of_date

    ),

    {#- a purchase is one day's orders, so the days up to as_of_date are those orders' -#}
    purchases_up_to_as_of as (

        select purchases.*
        from {{ ref('int_purchases_grouped') }} as purchases
        cross join reporting_window
        where purchases.purchase_date <= reporting_window.as_of_date

    ),

    all_totals as (

        {{ customer_purchase_totals('purchases_up_to_as_of', 'orders_up_to_as_of') }}

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

{#- Customers who bought before and during the holdout: their purchases before it. -#}
straddling_purchases as (

    select purchases.*

    from {{ ref('int_purchases_grouped') }} as purchases
    inner join totals on purchases.customer_id = totals.customer_id
    cross join reporting_window
    where
        totals.first_purchase_date < reporting_window.holdout_start_date
        and totals.last_purchase_date >= reporting_window.holdout_start_date
        and purchases.purchase_date < reporting_window.holdout_start_date

),

straddling as (

    select
        customer_id,
        count(*) as calibration_purchases,
        max(purchase_date) as calibration_last_purchase_date,
        sum(net_revenue) as calibration_net_revenue

    from straddling_purchases
    group by customer_id

),

calibration as (

    select
        totals.*,
        case
            when totals.first_purchase_date >= reporting_window.holdout_start_date then 0
            when totals.last_purchase_date < reporting_window.holdout_start_date
                then totals.purchases
            else straddling.calibration_purchases
        end as calibration_purchases,
        case
            when totals.last_purchase_date < reporting_window.holdout_start_date
                then totals.last_purchase_date
            else straddling.calibration_last_purchase_date
        end as calibration_last_purchase_date,
        case
            when totals.last_purchase_date < reporting_window.holdout_start_date
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
        calibration.first_purchase_date,
        calibration.last_purchase_date,
        calibration.purchases - 1 as frequency,
        {{ dbt.datediff(
            'calibration.first_purchase_date', 'calibration.last_purchase_date', 'day'
        ) }} as recency_days,
        {{ dbt.datediff('calibration.first_purchase_date', 'reporting_window.as_of_date', 'day') }}
            as t_days,
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
                    'calibration.first_purchase_date',
                    'calibration.calibration_last_purchase_date',
                    'day'
                ) }}
        end as calibration_recency_days,
        case
            when calibration.calibration_purchases > 0
                then {{ dbt.datediff(
                    'calibration.first_purchase_date', 'reporting_window.calibration_end_date', 'day'
                ) }}
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
