{#- The tests of the staging views' keys (unique, relationships) on a night check the keys the
    night's raw load re-decided alone, not every raw row again (at 100M orders those tests took
    15.5 s of a 302 s night). The raw load (ltv_pipeline.ingest.duckdb) records what it may
    have changed in raw._load_scope: every key (a first load, a full refresh, new rules), or
    the keys it re-decided, listed in raw._load_scope_keys. Every other key is as it was in
    the last published night, whose tests passed: a night that is not published is put back
    before the next load (ltv_pipeline.warehouse.last_good), so its keys are in the next
    load's scope again. A duplicate or a dangling reference needs a row the load wrote, whose
    key is in the scope: an order with an unknown customer, because an order re-decided when
    its customer changed is in the orders' scope too.

    A test opts in with the placeholder __loaded_<table>__ in its where config, e.g.
    where: "order_id in __loaded_orders__". It becomes the keys' subquery when the last load
    re-decided some keys only; with no scope recorded (Spark, whose load records none, or a
    warehouse loaded before this existed) or every key re-decided, the test reads every row. -#}

{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where and '__loaded_' in where -%}
        {%- set table = where.split('__loaded_')[1].split('__')[0] -%}
        {%- set keys = loaded_keys(table) -%}
        {%- if keys is none -%}
            {%- do return(relation) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where.replace('__loaded_' ~ table ~ '__', keys) }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- endif -%}
    {%- do return(adapter.dispatch('get_where_subquery', 'dbt')(relation)) -%}
{%- endmacro %}

{#- The subquery of the keys the last raw load re-decided in ``table``, or none when a test
    must read every row. -#}
{% macro loaded_keys(table) -%}
    {%- if not execute or target.type == 'spark' -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set scope = adapter.get_relation(
        database=target.database, schema='raw', identifier='_load_scope'
    ) -%}
    {%- if scope is none -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- set found = run_query(
        "select every_key from " ~ scope ~ " where source_table = '" ~ table ~ "'"
    ) -%}
    {%- if found.rows | length != 1 or found.rows[0][0] -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- do return(
        "(select key_value from raw._load_scope_keys where source_table = '" ~ table ~ "')"
    ) -%}
{%- endmacro %}
