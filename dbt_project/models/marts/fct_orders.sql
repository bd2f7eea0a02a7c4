{#- One row per order, for BI and ad-hoc questions: the valued orders of
    int_orders_valued as they are. A view, so the order-level data is stored once and the
    marts never feed the intermediate models (they read int_orders_valued). -#}
{{ config(materialized='view') }}

select
    order_id,
    customer_id,
    ordered_at,
    ordered_date,
    order_status,
    order_amount,
    order_cost,
    is_purchase,
    is_cost_imputed,
    net_revenue,
    gross_margin

from {{ ref('int_orders_valued') }}
