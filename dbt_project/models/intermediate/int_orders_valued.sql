{#- The single place where an order's net revenue and gross margin are defined:
    completed orders count as purchases; refunded and cancelled orders as none, with no revenue.
    Orders after as_of_date are left out, so a backfill sees the shop as it was. -#}
with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

valued as (

    select
        order_id,
        customer_id,
        ordered_at,
        ordered_date,
        order_status,
        order_status = 'completed' as is_purchase,
        order_cost is null as is_cost_imputed,
        case when order_status = 'completed' then order_amount else 0 end as net_revenue,
        case
            when order_status <> 'completed' then 0
            when order_cost is not null then order_amount - order_cost
            else order_amount * {{ default_margin_rate() }}
        end as gross_margin

    from orders
    where ordered_date <= {{ as_of_date() }}

)

select * from valued
