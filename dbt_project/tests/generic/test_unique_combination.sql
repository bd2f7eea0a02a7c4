{#- Fails for each combination of columns that appears more than once (dbt_utils' test, which
    cannot be installed without the dbt hub).

    touched_only, for a model a night rewrites for the touched orders only (the per-customer
    models of delete_touched_customers(), whose columns include customer_id, and
    int_orders_valued, keyed by order_id): when this very invocation built the model
    incrementally, only the rows whose touched_key is among the touched orders' are grouped.
    The others are the rows of the last build, unique then, and a duplicate always shares its
    touched_key, so this finds every duplicate while grouping a night's rows instead of all
    history (76M customer-months at 100M orders, where the full group ran out of a 3.5 GiB
    DuckDB limit). Any other build (full, Spark, `ltv dbt test` on its own) groups every row. -#}
{% test unique_combination(model, columns, touched_only=false, touched_key='customer_id') %}
{%- set builds = none -%}
{%- if touched_only and target.type != 'spark' and execute -%}
    {%- set builds = adapter.get_relation(
        database=model.database, schema='ltv_state', identifier='incremental_builds'
    ) -%}
{%- endif %}
select {{ columns | join(', ') }}, count(*) as copies
from {{ model }}
{%- if builds %}
where
    {{ touched_key }} in (select {{ touched_key }} from {{ orders_touched_relation() }})
    or not exists (
        select 1 from {{ builds }}
        where model_name = '{{ model.identifier }}' and invocation_id = '{{ invocation_id }}'
    )
{%- endif %}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
