{#- One row per customer and calendar month with a purchase, over all history (macro
    purchase_months): the month's purchases and value, its last purchase day, the cohort month,
    the last purchase before the month and the next purchase month. Nothing here depends on
    as_of_date, so a night keeps it up to date instead of regrouping all history: like
    int_purchases_grouped, an incremental run on DuckDB deletes the months of the customers
    whose orders changed (ltv_state.orders_touched) and inserts them again from all their
    purchases, which equals a full refresh. On Spark it is rebuilt each run. -#}
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

purchases as (

    select * from {{ ref('int_purchases_grouped') }}
    {% if is_incremental() %}
        where customer_id in (select customer_id from {{ orders_touched_relation() }})
    {% endif %}

),

months as (

    {{ purchase_months('purchases') }}

)

select * from months
