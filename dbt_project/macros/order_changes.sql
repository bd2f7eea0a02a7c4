{#- Change capture for the incremental order models on DuckDB, so that a night equals a fresh
    load of the same files whatever arrives: late orders of any age, changed or deleted rows,
    customers removed from the customer file (their orders leave the raw layer), a changed
    default margin rate, and rows of the model changed by hand (drift).

    Before int_orders_valued merges, its pre-hook finds the orders that are new, changed (any
    column, or a value the valuation would now give differently) or gone, with both their new
    and their old customer, and writes them into ltv_state.orders_touched. The model merges
    those orders, its post-hook deletes the gone ones, and int_customer_purchases_accumulated
    recomputes exactly the touched customers.

    The comparison is in two passes. First each order day of the staged orders and of the
    model is summed up: its orders and the sum of a hash of every compared column (the gross
    margin as the valuation would now give it on the staged side). A group by day is a scan,
    where comparing order by order is a join of every order with its stored row: at 100M
    orders the model (the join, the merge and the delete of gone orders) took 55.5 s of a
    467 s night (bench/results/pipeline_100m.md). Then only the
    days whose sums differ are compared order by order, as before. A changed order changes
    the sum of the day it is now on (its row there is new: an order id is unique on both
    sides); a gone order, of the day it was on. Two different days with equal counts and equal
    64-bit hash sums are what this would miss, a chance of about 2^-64 per changed day. On
    Spark (Parquet, insert_overwrite of whole days) the lookback window of
    incremental_lookback_days applies instead. -#}

{% macro orders_touched_relation() -%}ltv_state.orders_touched{%- endmacro %}

{#- A hash of the compared columns of an order in relation ``orders``, with its gross margin
    ``margin``. -#}
{% macro order_content_hash(orders, margin) -%}
    hash(
        {{ orders }}.order_id,
        {{ orders }}.customer_id,
        {{ orders }}.ordered_at,
        {{ orders }}.order_status,
        {{ orders }}.order_amount,
        {{ orders }}.order_cost,
        {{ margin }}
    )
{%- endmacro %}

{% macro capture_order_changes() -%}
    {%- if target.type == 'spark' -%}
        select 1
    {%- elif not is_incremental() -%}
        {#- a first build or a full refresh touches no order, but it is still numbered as a
            capture: a model kept from the touched orders that was left out of it (a full
            refresh of a selection) then sees that it missed one, and rebuilds everyone -#}
        delete from {{ orders_touched_relation() }};
        {{ note_order_capture() }}
    {%- else -%}
        create schema if not exists ltv_state;
        create or replace table {{ orders_touched_relation() }} as
        with

        staged_days as (

            select
                staged.ordered_date,
                count(*) as orders,
                sum({{ order_content_hash('staged', order_gross_margin('staged')) }}) as content
            from {{ ref('stg_shop__orders') }} as staged
            group by staged.ordered_date

        ),

        stored_days as (

            select
                stored.ordered_date,
                count(*) as orders,
                sum({{ order_content_hash('stored', 'stored.gross_margin') }}) as content
            from {{ this }} as stored
            group by stored.ordered_date

        ),

        differing_days as (

            select coalesce(staged_days.ordered_date, stored_days.ordered_date) as ordered_date
            from staged_days
            full outer join stored_days
                on staged_days.ordered_date is not distinct from stored_days.ordered_date
            where
                staged_days.orders is distinct from stored_days.orders
                or staged_days.content is distinct from stored_days.content

        ),

        staged as (

            select orders.*
            from {{ ref('stg_shop__orders') }} as orders
            semi join differing_days as days
                on orders.ordered_date is not distinct from days.ordered_date

        ),

        stored as (

            select orders.*
            from {{ this }} as orders
            semi join differing_days as days
                on orders.ordered_date is not distinct from days.ordered_date

        ),

        changed as (

            select staged.order_id, staged.customer_id, staged.ordered_date
            from staged
            left join stored on staged.order_id = stored.order_id
            where
                stored.order_id is null
                or stored.customer_id <> staged.customer_id
                or stored.ordered_at <> staged.ordered_at
                or stored.order_status <> staged.order_status
                or stored.order_amount is distinct from staged.order_amount
                or stored.order_cost is distinct from staged.order_cost
                or stored.gross_margin <> {{ order_gross_margin('staged') }}

        )

        select order_id, customer_id, ordered_date from changed
        union
        select stored.order_id, stored.customer_id, stored.ordered_date
        from stored
        where
            stored.order_id in (select order_id from changed)
            or stored.order_id not in (select order_id from staged);
        {{ note_incremental_build() }};
        {{ note_order_capture() }}
    {%- endif -%}
{%- endmacro %}

{#- Numbers the captures (ltv_state.order_captures: the last one's number and dbt invocation),
    so that a model kept from the touched orders can tell whether it saw every capture since
    its last build (is_same_month_build). -#}
{% macro order_captures_relation() -%}ltv_state.order_captures{%- endmacro %}

{% macro create_order_captures() -%}
    create table if not exists {{ order_captures_relation() }} (
        capture_number bigint, invocation_id varchar
    )
{%- endmacro %}

{% macro note_order_capture() -%}
    {{ create_order_captures() }};
    insert into {{ order_captures_relation() }}
    select coalesce(max(capture_number), 0) + 1, '{{ invocation_id }}'
    from {{ order_captures_relation() }};
    delete from {{ order_captures_relation() }}
    where capture_number < (select max(capture_number) from {{ order_captures_relation() }})
{%- endmacro %}

{#- After the merge: the orders that left the raw layer leave the model too. Only touched
    orders can have left (the capture puts every gone order among them), and the staged orders
    are looked up for those alone, not every stored order against every staged one. In a
    first build or a full
    refresh the model is made from the staged orders, so none has left, and the touched orders
    of an earlier night, if any, are either staged or not in the model (the post-hook runs
    when is_incremental() may already see the new table, so it does not ask). -#}
{% macro delete_gone_orders() -%}
    {%- set touched = adapter.get_relation(
        database=this.database, schema='ltv_state', identifier='orders_touched'
    ) if execute else none -%}
    {%- if target.type == 'spark' or touched is none -%}
        select 1
    {%- else -%}
        delete from {{ this }}
        where
            order_id in (select order_id from {{ orders_touched_relation() }})
            and order_id not in (
                select staged.order_id
                from {{ ref('stg_shop__orders') }} as staged
                semi join {{ orders_touched_relation() }} as touched
                    on staged.order_id = touched.order_id
            )
    {%- endif -%}
{%- endmacro %}

{#- An order's gross margin from a relation with stg_shop__orders' columns: the one definition
    (int_orders_valued), also used by the change capture to notice a changed margin rate.
    Typed decimal(21,4) whatever the rate: the type of amount x rate follows the digits of the
    rate's literal (0.35 gives decimal(21,4), 0.5 decimal(20,3)), and a night with a new rate
    would otherwise fail the incremental model's schema check. A rate with more than two
    decimals is rounded to 0.0001 of the currency per order. -#}
{% macro order_gross_margin(orders) -%}
    cast(
        case
            when {{ orders }}.order_status <> 'completed' then 0
            when {{ orders }}.order_cost is not null
                then {{ orders }}.order_amount - {{ orders }}.order_cost
            else {{ orders }}.order_amount * {{ default_margin_rate() }}
        end
        as decimal(21, 4)
    )
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
        {{ note_incremental_build() }}
    {%- endif -%}
{%- endmacro %}

{#- Notes that this invocation built the model from the touched orders only; with
    ``only_if`` (a SQL condition), only when it holds, and otherwise that it did not. -#}
{% macro note_incremental_build(only_if='true') -%}
    create table if not exists {{ incremental_builds_relation() }} (
        model_name varchar, invocation_id varchar
    );
    delete from {{ incremental_builds_relation() }} where model_name = '{{ this.identifier }}';
    insert into {{ incremental_builds_relation() }}
    select '{{ this.identifier }}', '{{ invocation_id }}'
    where {{ only_if }}
{%- endmacro %}

{#- Which model the last incremental build of each was, by dbt invocation. -#}
{% macro incremental_builds_relation() -%}ltv_state.incremental_builds{%- endmacro %}

{#- For a per-customer model that depends on as_of_date only through month-level values (the
    as-of month, the LTV window's months, the churn setting: window_build_key()), kept on DuckDB
    as delete and append. Each build notes its key and the order capture it saw in
    ltv_state.month_builds (post-hook note_month_build()). A build recomputes only the touched
    customers (ltv_state.orders_touched) when its key equals the last build's and the last build
    saw the capture just before this invocation's: every other customer's row depends on
    nothing that changed. Any other build deletes every row, and the model appends every
    customer: the first night of a new month, the window's end moving on a month's last day, a
    new churn setting, after a backfill, with no key noted, and after a capture this model did
    not see (it failed or was left out of a night, or ran without one). -#}
{% macro month_builds_relation() -%}ltv_state.month_builds{%- endmacro %}

{% macro create_month_builds() -%}
    create schema if not exists ltv_state;
    create table if not exists {{ month_builds_relation() }} (
        model_name varchar, build_key varchar, capture_number bigint
    );
    {{ create_order_captures() }};
    {#- as the capture makes it: absent until a warehouse's first night -#}
    create table if not exists {{ orders_touched_relation() }} (
        order_id bigint, customer_id bigint, ordered_date date
    )
{%- endmacro %}

{#- on-run-start (DuckDB): the state tables, made before any model runs. Two models' hooks
    creating the same schema or table at once, on two threads, conflict in DuckDB ("Catalog
    write-write conflict"); once they exist, the hooks' "if not exists" writes nothing. A
    warehouse whose last capture predates the orders' date gets that column, empty until its
    next capture. -#}
{% macro create_ltv_state() -%}
    {%- if target.type == 'spark' -%}
        select 1
    {%- else -%}
        {{ create_month_builds() }};
        alter table {{ orders_touched_relation() }} add column if not exists ordered_date date;
        create table if not exists {{ incremental_builds_relation() }} (
            model_name varchar, invocation_id varchar
        );
        create table if not exists {{ decided_builds_relation() }} (
            model_name varchar, build_key varchar, is_rebuild boolean
        )
    {%- endif -%}
{%- endmacro %}

{#- The key, from int_reporting_window: everything of as_of_date the customer windows read. A
    backfill's key names its date, so no later build takes its rows as current. -#}
{% macro window_build_key(reporting_window) -%}
    (
        select {{ dbt.concat([
            "cast(" ~ month_number('as_of_date') ~ " as " ~ dbt.type_string() ~ ")",
            "'|'",
            "cast(" ~ month_number('window_start') ~ " as " ~ dbt.type_string() ~ ")",
            "'|'",
            "cast(" ~ month_number('window_end') ~ " as " ~ dbt.type_string() ~ ")",
            "'|" ~ churn_inactivity_days() ~ "|'",
            ("cast(as_of_date as " ~ dbt.type_string() ~ ")") if as_of_date_is_set() else "'latest'",
        ]) }}
        from {{ reporting_window }}
    )
{%- endmacro %}

{#- Whether the last build of this model had the key ``build_key`` and saw the capture just
    before the one this invocation made. -#}
{% macro is_same_month_build(build_key) -%}
    exists (
        select 1
        from {{ month_builds_relation() }} as builds
        inner join {{ order_captures_relation() }} as captures
            on builds.capture_number = captures.capture_number - 1
        where
            builds.model_name = '{{ this.identifier }}'
            and builds.build_key = {{ build_key }}
            and captures.invocation_id = '{{ invocation_id }}'
    )
{%- endmacro %}

{#- Pre-hook: deletes the customers the model is about to append. -#}
{% macro delete_customers_to_recompute(build_key) -%}
    {%- if target.type == 'spark' or not is_incremental() -%}
        select 1
    {%- else -%}
        {{ create_month_builds() }};
        delete from {{ this }}
        where
            customer_id in (select customer_id from {{ orders_touched_relation() }})
            or not {{ is_same_month_build(build_key) }};
        {#- on a night of the touched customers alone, the uniqueness test then groups those
            (unique_combination, touched_only) -#}
        {{ note_incremental_build(only_if=is_same_month_build(build_key)) }}
    {%- endif -%}
{%- endmacro %}

{#- The model's filter on an incremental build: the customers the pre-hook deleted. -#}
{% macro customers_to_recompute(build_key) -%}
    (
        customer_id in (select customer_id from {{ orders_touched_relation() }})
        or not {{ is_same_month_build(build_key) }}
    )
{%- endmacro %}

{#- Post-hook of every DuckDB build (full, incremental or backfill): notes its key. -#}
{% macro note_month_build(build_key) -%}
    {%- if target.type == 'spark' -%}
        select 1
    {%- else -%}
        {{ create_month_builds() }};
        delete from {{ month_builds_relation() }} where model_name = '{{ this.identifier }}';
        insert into {{ month_builds_relation() }}
        select
            '{{ this.identifier }}',
            {{ build_key }},
            {#- 0 before a warehouse's first capture: the next night's is number 1 -#}
            (select coalesce(max(capture_number), 0) from {{ order_captures_relation() }})
    {%- endif -%}
{%- endmacro %}

{#- For a model of complete months alone (int_tenure_months_aggregated), kept on DuckDB as a
    table rebuilt only when something it reads changed. Its rows depend on the orders dated
    before window_end (the first day after the last complete month), the acquisition channel and
    country of the customers who bought by then, window_end itself and the churn setting: an
    order in the as-of month changes none of them (the spells of earlier months end there at
    the latest, int_customer_spells_classified). The key holds window_end's month, the churn
    setting, a hash sum of those customers' (customer_id, channel, country) and, in a backfill,
    its date. The pre-hook decides once (ltv_state.decided_builds): rebuild when the key differs
    from the last build's, the last build did not see the capture just before this invocation's
    (is_same_month_build), or a touched order (new, changed or gone, at its old and new date) is
    dated before window_end; then it deletes every row and the model appends them all again,
    and otherwise the model appends nothing. The post-hook notes the key in
    ltv_state.month_builds. -#}
{% macro complete_months_build_key() -%}
    {%- set reporting_window = ref('int_reporting_window') -%}
    (
        select {{ dbt.concat([
            "cast(" ~ month_number('window_end') ~ " as " ~ dbt.type_string() ~ ")",
            "'|" ~ churn_inactivity_days() ~ "|'",
            "cast((" ~ complete_months_customers_hash(
                "(select window_end from " ~ reporting_window ~ ")"
            ) ~ ") as "
                ~ dbt.type_string() ~ ")",
            "'|'",
            ("cast(as_of_date as " ~ dbt.type_string() ~ ")") if as_of_date_is_set() else "'latest'",
        ]) }}
        from {{ reporting_window }} as reporting_window
    )
{%- endmacro %}

{#- A hash sum of (customer_id, acquisition_channel, country_code) over the customers whose
    first purchase is before ``window_end``: all that the complete months read of the customer
    file (0.2 s at 10M orders; ``window_end`` an uncorrelated subquery, which DuckDB runs once).
    Customers who signed up since, or bought first in the as-of month, leave it unchanged. -#}
{% macro complete_months_customers_hash(window_end) -%}
    select coalesce(
        sum(hash(customers.customer_id, customers.acquisition_channel, customers.country_code)),
        0
    )
    from {{ ref('stg_shop__customers') }} as customers
    semi join {{ ref('int_customer_purchases_accumulated') }} as totals
        on
            customers.customer_id = totals.customer_id
            and totals.first_purchase_date < {{ window_end }}
{%- endmacro %}

{% macro decided_builds_relation() -%}ltv_state.decided_builds{%- endmacro %}

{#- The config of a model of complete months kept between nights (int_tenure_months_aggregated,
    int_complete_cohort_months_aggregated): on DuckDB appended to, its pre-hook deciding
    whether the night rebuilds it; a table on Spark and for a backfill (as_of_date set). Each
    model still names the models its key reads (a depends_on comment), which dbt reads from
    the model's own file. -#}
{% macro kept_complete_months_config() -%}
    {%- set rebuilt = target.type == 'spark' or as_of_date_is_set() -%}
    {{ config(
        materialized='table' if rebuilt else 'incremental',
        incremental_strategy=none if rebuilt else 'append',
        on_schema_change='fail',
        pre_hook="{{ decide_complete_months_build() }}",
        post_hook="{{ note_decided_build() }}",
    ) }}
{%- endmacro %}

{#- Pre-hook (DuckDB, any build): decides whether this build is a rebuild (see above) and
    notes it with the key; on an incremental build that rebuilds, deletes every row. -#}
{% macro decide_complete_months_build() -%}
    {%- if target.type == 'spark' -%}
        select 1
    {%- else -%}
        delete from {{ decided_builds_relation() }} where model_name = '{{ this.identifier }}';
        insert into {{ decided_builds_relation() }}
        select
            '{{ this.identifier }}',
            decided.build_key,
            {%- if is_incremental() %}
                not {{ is_same_month_build('decided.build_key') }}
                or exists (
                    select 1
                    from {{ orders_touched_relation() }} as touched
                    where
                        touched.ordered_date is null
                        or touched.ordered_date
                        < (select window_end from {{ ref('int_reporting_window') }})
                )
            {%- else %}
                true
            {%- endif %}
        from (select {{ complete_months_build_key() }} as build_key) as decided;
        {%- if is_incremental() %}
            delete from {{ this }} where {{ is_complete_months_rebuild() }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{#- The pre-hook's decision, as a SQL condition. -#}
{% macro is_complete_months_rebuild() -%}
    (
        select decided.is_rebuild
        from {{ decided_builds_relation() }} as decided
        where decided.model_name = '{{ this.identifier }}'
    )
{%- endmacro %}

{#- Post-hook: notes the key the pre-hook computed as this model's last build. -#}
{% macro note_decided_build() -%}
    {{ note_month_build(
        "(select decided.build_key from " ~ decided_builds_relation()
        ~ " as decided where decided.model_name = '" ~ this.identifier ~ "')"
    ) }}
{%- endmacro %}
