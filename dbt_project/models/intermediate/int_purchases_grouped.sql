{#- One row per purchase: a customer's completed orders on one calendar day (UTC), macro
    purchase_days, the one definition every mart, RFM and the CLV models count. All history;
    readers keep the days up to as_of_date.
    Incremental on DuckDB, like int_customer_purchases_accumulated: a run deletes every purchase
    of the customers whose orders int_orders_valued merged or deleted (ltv_state.orders_touched,
    old and new customer of a moved order) and inserts them again from all their orders, so it
    equals a full refresh; a night rewrites the purchases of its customers instead of 10M rows.
    On Spark (no delete without Delta) it is rebuilt each run. -#}
{%- set on_spark = target.type == 'spark' -%}
{{
    config(
        materialized='table' if on_spark else 'incremental',
        incremental_strategy=none if on_spark else 'append',
        on_schema_change='fail',
        pre_hook=(
            "select 1" if on_spark else "{{ delete_touched_customers() }}"
        ),
    )
}}

with

orders as (

    select * from {{ ref('int_orders_valued') }}
    {% if is_incremental() %}
        where customer_id in (select customer_id from {{ orders_touched_relation() }})
    {% endif %}

),

purchases as (

    {{ purchase_days('orders') }}

)

select * from purchases
