{#- The single place where an order's net revenue and gross margin are defined: completed orders
    count as purchases; refunded and cancelled orders as none, with no revenue.
    Incremental: each run re-merges the orders of the whole days from incremental_lookback_days
    before the newest order date already here, so late arrivals and status changes
    (completed -> refunded) land. On Spark (no merge without Delta) the table is Parquet
    partitioned by day and those days are overwritten whole: the window is whole days so that
    every overwritten partition is complete. -#}
{%- set on_spark = target.type == 'spark' -%}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='insert_overwrite' if on_spark else 'merge',
        file_format='parquet' if on_spark else none,
        partition_by=['ordered_date'] if on_spark else none,
        on_schema_change='fail',
    )
}}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}
    {% if is_incremental() %}
        where ordered_date >= (
            select cast({{ dbt.dateadd(
                'day', -1 * incremental_lookback_days() | int, 'max(ordered_date)'
            ) }} as date)
            from {{ this }}
        )
    {% endif %}

),

valued as (

    select
        order_id,
        customer_id,
        ordered_at,
        ordered_date,
        order_status,
        order_amount,
        order_cost,
        order_status = 'completed' as is_purchase,
        order_cost is null as is_cost_imputed,
        case when order_status = 'completed' then order_amount else 0 end as net_revenue,
        case
            when order_status <> 'completed' then 0
            when order_cost is not null then order_amount - order_cost
            else order_amount * {{ default_margin_rate() }}
        end as gross_margin

    from orders

)

select * from valued
