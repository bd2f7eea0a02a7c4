{#- One row per customer and calendar month in which they purchased, up to the as-of month: the
    month's purchases and value, its state (new, active at the start, reactivated), and the
    spell that starts there, up to the next purchase month, as month numbers (macro
    month_number): the months it keeps the customer active at their start and at their end,
    the months it lists (active at the start or buying), and the month it ends in churn, if it
    does by as_of_date. Active as of day D = a purchase on or before D, the last at most
    churn_inactivity_days before D. After a purchase month whose last purchase is day L the
    customer is active through L + churn_inactivity_days, so active at the start of every month
    up to the one holding L + churn_inactivity_days + 1 (the lapse month), and at the end of
    every month before it (and of the lapse month too, if it is the as-of month and the lapse
    is after as_of_date); churn_inactivity_days >= 31, so the lapse month is never the
    purchase month. Monthly counts and per-customer month counts follow by interval arithmetic
    (churn_monthly, int_tenure_months_aggregated, int_customer_windows_aggregated): no row is
    stored for a month without a purchase (at 10M orders, 7.6M rows instead of 26M).
    Purchases are purchase days (int_purchases_grouped). The months and their neighbours come
    from int_purchase_months_grouped, kept up to date from the night's orders; a backfill (var
    as_of_date set) computes them from the purchases up to that date with the same macro. -#}
{#- A view on DuckDB (unlike the other intermediate models): every column is row-wise
    arithmetic on one row of int_purchase_months_grouped, so its five readers scan that table
    instead of this model writing 7.6M rows each night (10M orders; bench/results). A table on
    Spark, and for a backfill, whose months are regrouped from the purchases. -#}
{{ config(
    materialized='view' if target.type == 'duckdb' and not as_of_date_is_set() else 'table'
) }}
-- depends_on: {{ ref('int_purchases_grouped') }}
-- depends_on: {{ ref('int_purchase_months_grouped') }}
with

reporting_window as (

    select
        as_of_date,
        {{ month_number('as_of_date') }} as as_of_month_number

    from {{ ref('int_reporting_window') }}

),

{% if as_of_date_is_set() %}
    purchases as (

        select
            purchases.customer_id,
            purchases.purchase_date,
            purchases.net_revenue,
            purchases.gross_margin

        from {{ ref('int_purchases_grouped') }} as purchases
        cross join reporting_window
        where purchases.purchase_date <= reporting_window.as_of_date

    ),

    purchase_months as (

        {{ purchase_months('purchases') }}

    ),
{% else %}
    {#- as_of_date is the last order date: every purchase month counts -#}
    purchase_months as (

        select * from {{ ref('int_purchase_months_grouped') }}

    ),
{% endif %}

bounded as (

    select
        purchase_months.*,
        reporting_window.as_of_month_number,
        {{ month_number(
            'cast(' ~ dbt.dateadd(
                'day', churn_inactivity_days() ~ ' + 1', 'purchase_months.last_purchase_in_month'
            ) ~ ' as date)'
        ) }} as lapse_month_number,
        cast({{ dbt.dateadd(
            'day', churn_inactivity_days() ~ ' + 1', 'purchase_months.last_purchase_in_month'
        ) }} as date) <= reporting_window.as_of_date as lapses_by_as_of,
        coalesce(
            {{ dbt.datediff(
                'purchase_months.last_purchase_before_month',
                dbt.dateadd('day', -1, 'purchase_months.month_start'),
                'day'
            ) }} <= {{ churn_inactivity_days() }},
            false
        ) as is_active_at_start

    from purchase_months
    cross join reporting_window

),

final as (

    select
        customer_id,
        cohort_month,
        month_number - {{ month_number('cohort_month') }} as months_since_acquisition,
        month_start,
        month_number,
        purchases,
        net_revenue,
        gross_margin,
        last_purchase_before_month,
        first_purchase_in_month,
        last_purchase_in_month,
        month_start = cohort_month as is_new,
        is_active_at_start,
        month_start <> cohort_month and not is_active_at_start as is_reactivated_in_month,
        {#- the next purchase month counts here too: its start is this spell's -#}
        least(
            lapse_month_number,
            coalesce(next_purchase_month_number, as_of_month_number),
            as_of_month_number
        ) as active_at_start_until,
        least(
            coalesce(next_purchase_month_number - 1, as_of_month_number),
            case when lapses_by_as_of then lapse_month_number - 1 else as_of_month_number end
        ) as active_at_end_until,
        least(
            lapse_month_number,
            coalesce(next_purchase_month_number - 1, as_of_month_number),
            as_of_month_number
        ) as listed_until,
        case
            when
                lapses_by_as_of
                and (
                    next_purchase_month_number is null
                    or lapse_month_number < next_purchase_month_number
                )
                then lapse_month_number
        end as churned_month_number

    from bounded

)

select * from final
