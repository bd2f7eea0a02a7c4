{#- One row per purchase: a customer's completed orders on one calendar day (UTC), macro
    purchase_days, the one definition every mart, RFM and the CLV models count. All history;
    readers keep the days up to as_of_date. -#}
with

orders as (

    select * from {{ ref('int_orders_valued') }}

),

purchases as (

    {{ purchase_days('orders') }}

)

select * from purchases
