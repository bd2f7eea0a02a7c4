{#- One row per customer with an order: purchase totals that do not depend on as_of_date
    (macros/customer_purchase_totals.sql), kept up to date from new orders instead of all history.
    An incremental run recomputes, from all their orders, only the customers with an order in
    the window fct_orders re-merged (incremental_lookback_days before its newest order), widened
    by a day, so every late order and status change reaches its customer. Like fct_orders, an
    edit older than the window needs a full refresh (dbt build --full-refresh rebuilds both).
    On Spark without Delta there is no merge, and a per-customer table has no partitions to
    overwrite: there it is rebuilt each run (on Delta, merge works as on DuckDB). -#}
{%- set on_spark = target.type == 'spark' -%}
{{
    config(
        materialized='table' if on_spark else 'incremental',
        unique_key='customer_id',
        incremental_strategy=none if on_spark else 'merge',
        on_schema_change='fail',
    )
}}

with

orders as (

    select * from {{ ref('int_orders_valued') }}
    {% if is_incremental() %}
        where customer_id in (
            select customer_id from {{ ref('int_orders_valued') }}
            where ordered_at >= (
                select {{ dbt.dateadd(
                    'day', -1 - incremental_lookback_days() | int, 'max(orders_seen_until)'
                ) }}
                from {{ this }}
            )
        )
    {% endif %}

),

totals as (

    {{ customer_purchase_totals('orders') }}

)

select * from totals
