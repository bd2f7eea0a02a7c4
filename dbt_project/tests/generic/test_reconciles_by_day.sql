{#- Drift between a model and the staged rows it is built from cannot be silent: per day, the
    model's row count and sum of `measure` must equal the source's. A row per day that differs
    (with both sides) is a failure. -#}
{% test reconciles_by_day(model, source_model, date_column, measure) %}
with

built as (

    select {{ date_column }} as day, count(*) as row_count, sum({{ measure }}) as total
    from {{ model }}
    group by {{ date_column }}

),

source as (

    select {{ date_column }} as day, count(*) as row_count, sum({{ measure }}) as total
    from {{ source_model }}
    group by {{ date_column }}

)

select
    coalesce(built.day, source.day) as day,
    built.row_count as built_rows,
    source.row_count as source_rows,
    built.total as built_total,
    source.total as source_total

from built
full outer join source on built.day = source.day
where
    built.row_count is distinct from source.row_count
    or built.total is distinct from source.total
{% endtest %}
