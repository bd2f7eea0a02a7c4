{#- Per customer, the purchase totals that do not depend on as_of_date, from `orders` (a
    relation or CTE with fct_orders' columns): the newest order of any status (the watermark an
    incremental run starts from), first and last purchase, purchase occasions (orders at one
    instant are one purchase: a split basket), net revenue and the first occasion's net revenue.
    Customers whose orders are all refunded or cancelled have purchases = 0 and null times. The
    single definition used by int_customer_purchases_accumulated (all or touched customers) and
    by int_customer_purchases_summarized when as_of_date is set (a backfill). -#}
{% macro customer_purchase_totals(orders) -%}
    with

    occasions as (

        select
            customer_id,
            ordered_at,
            sum(net_revenue) as net_revenue

        from {{ orders }}
        where is_purchase
        group by customer_id, ordered_at

    ),

    purchase_totals as (

        select
            customer_id,
            min(ordered_at) as first_purchase_at,
            max(ordered_at) as last_purchase_at,
            count(*) as purchases,
            sum(net_revenue) as net_revenue,
            min_by(net_revenue, ordered_at) as first_purchase_net_revenue

        from occasions
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
        purchase_totals.first_purchase_at,
        purchase_totals.last_purchase_at,
        coalesce(purchase_totals.purchases, 0) as purchases,
        coalesce(purchase_totals.net_revenue, 0) as net_revenue,
        purchase_totals.first_purchase_net_revenue

    from orders_seen
    left join purchase_totals on orders_seen.customer_id = purchase_totals.customer_id
{%- endmacro %}
