{#- The tests of the staging views' keys (unique, relationships) check the keys the raw loads
    re-decided since those tests last passed, not every raw row again (at 100M orders they took
    15.5 s of a 302 s night). The raw load (ltv_pipeline.ingest.duckdb) adds what it may have
    changed to raw._load_scope: every key (a first load, a full refresh, new rules), or the
    keys it re-decided, listed in raw._load_scope_keys; the on-run-end hook
    clear_tested_load_scope empties a table's scope once every test reading it passed in one
    invocation. So every other key passed these tests before, and a night whose tests failed or
    did not run (a subset run, a failed step) leaves its keys in the scope. A duplicate or a
    dangling reference needs a row a load wrote, whose key is in the scope: an order with an
    unknown customer too, as an order re-decided when its customer changed is in the orders'
    scope.

    A test opts in with exactly where: "<key> in __loaded_<table>__". It becomes the keys'
    subquery when the loads re-decided some keys only; with no scope recorded (Spark, whose load
    records none, or a warehouse loaded before this existed) or every key re-decided, the test
    reads every row. -#}

{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where and '__loaded_' in where -%}
        {%- set table = loaded_table(where) -%}
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

{#- The table of a where config "<key> in __loaded_<table>__"; any other use of the
    placeholder is refused, since reading every row would drop the rest of the condition. -#}
{% macro loaded_table(where) -%}
    {%- set parts = where.strip().split(' ') -%}
    {%- if parts | length != 3 or parts[1] != 'in' or not parts[2].startswith('__loaded_')
        or not parts[2].endswith('__') -%}
        {{ exceptions.raise_compiler_error(
            "a where config with __loaded_<table>__ must read '<key> in __loaded_<table>__', not '"
            ~ where ~ "'"
        ) }}
    {%- endif -%}
    {%- do return(parts[2][9:-2]) -%}
{%- endmacro %}

{#- on-run-end: empties the scope of each table whose opted-in tests all passed in this
    invocation (``results``); a table none of whose tests ran, or one failed, keeps its scope. -#}
{% macro clear_tested_load_scope(results) -%}
    {%- set scope = adapter.get_relation(
        database=target.database, schema='raw', identifier='_load_scope'
    ) if execute and target.type != 'spark' else none -%}
    {%- if scope is none -%}
        select 1
    {%- else -%}
        {%- set tests = {} -%}
        {%- for node in graph.nodes.values() -%}
            {%- set where = node.config.get('where') if node.resource_type == 'test' else none -%}
            {%- if where and '__loaded_' in where -%}
                {%- do tests.setdefault(loaded_table(where), []).append(node.unique_id) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set passed = [] -%}
        {%- for result in results if result.status == 'pass' -%}
            {%- do passed.append(result.node.unique_id) -%}
        {%- endfor -%}
        {%- set tested = [] -%}
        {%- for table, ids in tests.items() -%}
            {%- if ids | reject('in', passed) | list | length == 0 -%}
                {%- do tested.append("'" ~ table ~ "'") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if tested -%}
            delete from raw._load_scope_keys where source_table in ({{ tested | join(', ') }});
            update raw._load_scope set every_key = false
            where source_table in ({{ tested | join(', ') }})
        {%- else -%}
            select 1
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
