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
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin

    from {{ orders }}
    where is_purchase
    group by customer_id, ordered_date
{%- endmacro %}

{#- Per customer, the purchase totals that do not depend on as_of_date, from `orders` (a
    relation or CTE with int_orders_valued's columns): the newest order of any status (the
    watermark an incremental run starts from), first and last purchase date, purchases (days,
    macro purchase_days), net revenue and the first purchase's net revenue. Customers whose
    orders are all refunded or cancelled have purchases = 0 and null dates. The single
    definition used by int_customer_purchases_accumulated (all or touched customers) and by
    int_customer_purchases_summarized when as_of_date is set (a backfill). -#}
{% macro customer_purchase_totals(orders) -%}
    with

    purchases as (

        {{ purchase_days(orders) }}

    ),

    purchase_totals as (

        select
            customer_id,
            min(purchase_date) as first_purchase_date,
            max(purchase_date) as last_purchase_date,
            count(*) as purchases,
            sum(net_revenue) as net_revenue,
            min_by(net_revenue, purchase_date) as first_purchase_net_revenue

        from purchases
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
