{#- Change capture for the incremental order models on DuckDB, so that a night equals a fresh
    load of the same files whatever arrives: late orders of any age, changed or deleted rows,
    customers removed from the customer file (their orders leave the raw layer).

    Before int_orders_valued merges, its pre-hook compares every staged order with the stored
    one and writes the orders that are new, changed (any column, or a value the valuation
    would now give differently) or gone, with both their new and their old customer, into
    ltv_state.orders_touched. The model merges those orders, its post-hook deletes the gone
    ones, and int_customer_purchases_accumulated recomputes exactly the touched customers. The
    comparison is a hash join over all orders, a second or two at 10M orders, which buys
    exactness instead of a lookback window. On Spark (Parquet, insert_overwrite of whole days)
    the lookback window of incremental_lookback_days still applies. -#}

{% macro orders_touched_relation() -%}ltv_state.orders_touched{%- endmacro %}

{% macro capture_order_changes() -%}
    {%- if target.type == 'spark' or not is_incremental() -%}
        select 1
    {%- else -%}
        create schema if not exists ltv_state;
        create or replace table {{ orders_touched_relation() }} as
        with

        staged as (

            select * from {{ ref('stg_shop__orders') }}

        ),

        changed as (

            select staged.order_id, staged.customer_id
            from staged
            left join {{ this }} as stored on staged.order_id = stored.order_id
            where
                stored.order_id is null
                or stored.customer_id <> staged.customer_id
                or stored.ordered_at <> staged.ordered_at
                or stored.order_status <> staged.order_status
                or stored.order_amount is distinct from staged.order_amount
                or stored.order_cost is distinct from staged.order_cost
                or stored.gross_margin <> {{ order_gross_margin('staged') }}

        )

        select order_id, customer_id from changed
        union
        select stored.order_id, stored.customer_id
        from {{ this }} as stored
        where
            stored.order_id in (select order_id from changed)
            or stored.order_id not in (select order_id from staged)
    {%- endif -%}
{%- endmacro %}

{#- After the merge: the orders that left the raw layer leave the model too. -#}
{% macro delete_gone_orders() -%}
    {%- if target.type == 'spark' -%}
        select 1
    {%- else -%}
        delete from {{ this }}
        where order_id not in (select order_id from {{ ref('stg_shop__orders') }})
    {%- endif -%}
{%- endmacro %}

{#- An order's gross margin from a relation with stg_shop__orders' columns: the one definition
    (int_orders_valued), also used by the change capture to notice a changed margin rate. -#}
{% macro order_gross_margin(orders) -%}
    case
        when {{ orders }}.order_status <> 'completed' then 0
        when {{ orders }}.order_cost is not null
            then {{ orders }}.order_amount - {{ orders }}.order_cost
        else {{ orders }}.order_amount * {{ default_margin_rate() }}
    end
{%- endmacro %}

{#- Pre-hook of a per-customer incremental model appended from the touched customers' orders:
    their old rows go first, so the append leaves exactly their recomputed rows. It also notes
    that this invocation built the model from the touched customers only
    (incremental_builds_relation), which lets the model's uniqueness test look at them alone
    (tests/generic/test_unique_combination.sql). -#}
{% macro delete_touched_customers() -%}
    {%- if target.type == 'spark' or not is_incremental() -%}
        select 1
    {%- else -%}
        delete from {{ this }}
        where customer_id in (select customer_id from {{ orders_touched_relation() }});
        create table if not exists {{ incremental_builds_relation() }} (
            model_name varchar, invocation_id varchar
        );
        delete from {{ incremental_builds_relation() }} where model_name = '{{ this.identifier }}';
        insert into {{ incremental_builds_relation() }}
        values ('{{ this.identifier }}', '{{ invocation_id }}')
    {%- endif -%}
{%- endmacro %}

{#- Which per-customer model the last incremental build of each was, by dbt invocation. -#}
{% macro incremental_builds_relation() -%}ltv_state.incremental_builds{%- endmacro %}
