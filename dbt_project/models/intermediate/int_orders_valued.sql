{#- The single place where an order's net revenue and gross margin are defined: completed orders
    count as purchases; refunded and cancelled orders as none, with no revenue.
    Incremental. On DuckDB each run merges exactly the orders that are new, changed or gone
    since the last build (macros/order_changes.sql: a pre-hook compares every staged order
    with the stored one), so a night equals a fresh load of the same files. On Spark (no merge
    without Delta) the table is Parquet partitioned by day and the whole days from
    incremental_lookback_days before the newest order date are overwritten: older corrections
    there need a full refresh. -#}
{%- set on_spark = target.type == 'spark' -%}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='insert_overwrite' if on_spark else 'merge',
        file_format='parquet' if on_spark else none,
        partition_by=['ordered_date'] if on_spark else none,
        on_schema_change='fail',
        pre_hook="{{ capture_order_changes() }}",
        post_hook="{{ delete_gone_orders() }}",
    )
}}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}
    {% if is_incremental() and on_spark %}
        where ordered_date >= (
            select cast({{ dbt.dateadd(
                'day', -1 * incremental_lookback_days() | int, 'max(ordered_date)'
            ) }} as date)
            from {{ this }}
        )
    {% elif is_incremental() %}
        where order_id in (select order_id from {{ orders_touched_relation() }})
    {% endif %}

),

valued as (

    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        orders.ordered_date,
        orders.order_status,
        orders.order_amount,
        orders.order_cost,
        orders.order_status = 'completed' as is_purchase,
        orders.order_cost is null as is_cost_imputed,
        case
            when orders.order_status = 'completed' then orders.order_amount else 0
        end as net_revenue,
        {{ order_gross_margin('orders') }} as gross_margin

    from orders

)

select * from valued
