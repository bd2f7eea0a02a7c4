{#- A purchase is a customer's completed orders on one calendar day (UTC): the one definition
    of "a purchase" that every mart, the RFM scores and the CLV models count. Several orders of
    one customer on one day (a split basket, a second checkout for a forgotten item) are one
    purchase worth their sum; lifetimes' summaries and the published BG/NBD fits count whole
    days the same way. `orders` is a relation or CTE with int_orders_valued's columns. -#}
{% macro purchase_days(orders) -%}
    select
        customer_id,
        ordered_date as purchase_date,
        count(*) as order_lines,
        {{ sum_money('net_revenue') }} as net_revenue,
        {{ sum_money('gross_margin', 4) }} as gross_margin

    from {{ orders }}
    where is_purchase
    group by customer_id, ordered_date
{%- endmacro %}

{#- Per customer, the purchase totals that do not depend on as_of_date: the newest order of any
    status (the watermark an incremental run starts from), first and last purchase date,
    purchases (days), net revenue and the first purchase's net revenue. `purchases` is a
    relation or CTE with int_purchases_grouped's columns (macro purchase_days), `orders` one
    with int_orders_valued's, over the same customers and dates; the purchases are not grouped
    from the orders again (at 10M orders that second grouping was half this macro's time).
    Customers whose orders are all refunded or cancelled have purchases = 0 and null dates. The
    single definition used by int_customer_purchases_accumulated (all or touched customers) and
    by int_customer_purchases_summarized when as_of_date is set (a backfill). -#}
{% macro customer_purchase_totals(purchases, orders) -%}
    with

    purchase_totals as (

        select
            customer_id,
            min(purchase_date) as first_purchase_date,
            max(purchase_date) as last_purchase_date,
            count(*) as purchases,
            {{ sum_money('net_revenue') }} as net_revenue,
            min_by(net_revenue, purchase_date) as first_purchase_net_revenue

        from {{ purchases }}
        group by customer_id

    ),

    orders_seen as (

        select
            customer_id,
            max(ordered_at) as orders_seen_until

        from {{ orders }}
        group by customer_id

    )

    select
        orders_seen.customer_id,
        orders_seen.orders_seen_until,
        purchase_totals.first_purchase_date,
        purchase_totals.last_purchase_date,
        coalesce(purchase_totals.purchases, 0) as purchases,
        coalesce(purchase_totals.net_revenue, 0) as net_revenue,
        purchase_totals.first_purchase_net_revenue

    from orders_seen
    left join purchase_totals on orders_seen.customer_id = purchase_totals.customer_id
{%- endmacro %}

{#- One row per customer and calendar month with a purchase, from `purchases` (a relation or
    CTE with int_purchases_grouped's columns): the month's purchases and value, its first and
    last purchase day, the customer's cohort (first purchase) month, their last purchase before the
    month and the month number (macro month_number) of their next purchase month. It depends on
    as_of_date only through which purchases it is given: int_purchase_months_grouped keeps it
    for all history, and int_customer_spells_classified computes it from the purchases up to
    as_of_date in a backfill. -#}
{% macro purchase_months(purchases) -%}
    with

    customer_monthly as (

        select
            customer_id,
            cast({{ dbt.date_trunc('month', 'purchase_date') }} as date) as month_start,
            count(*) as purchases,
            {{ sum_money('net_revenue') }} as net_revenue,
            {{ sum_money('gross_margin', 4) }} as gross_margin,
            min(purchase_date) as first_purchase_in_month,
            max(purchase_date) as last_purchase_in_month

        from {{ purchases }}
        group by 1, 2

    )

    select
        customer_id,
        month_start,
        {{ month_number('month_start') }} as month_number,
        purchases,
        net_revenue,
        gross_margin,
        first_purchase_in_month,
        last_purchase_in_month,
        {#- first_value over the same window as lag and lead, so DuckDB sorts once (the month
            grouping of 10M orders 0.3-0.5 s quicker than with min over the partition) -#}
        first_value(month_start) over (
            partition by customer_id order by month_start
        ) as cohort_month,
        lag(last_purchase_in_month) over (
            partition by customer_id order by month_start
        ) as last_purchase_before_month,
        lead({{ month_number('month_start') }}) over (
            partition by customer_id order by month_start
        ) as next_purchase_month_number

    from customer_monthly
{%- endmacro %}
