{#- One row: the as-of date and the LTV lookback window, the last ltv_lookback_months complete
    months up to as_of_date ([window_start, window_end)), and the CLV backtest's holdout (the last
    clv_holdout_days days up to as_of_date). A one-row parameter model, so it does
    not follow the int_<entity>s_<verb>s naming.
    as_of_date() reads stg_shop__orders only when the var is unset; declare the dependency so
    dbt's graph (and Dagster's) is the same whatever the vars. -#}
-- depends_on: {{ ref('stg_shop__orders') }}
with

as_of as (

    select {{ as_of_date() }} as as_of_date

),

bounds as (

    select
        as_of_date,
        case
            when as_of_date = cast({{ dbt.last_day('as_of_date', 'month') }} as date)
                then cast({{ dbt.dateadd('day', 1, 'as_of_date') }} as date)
            else cast({{ dbt.date_trunc('month', 'as_of_date') }} as date)
        end as window_end

    from as_of

)

select
    as_of_date,
    cast({{ dbt.dateadd('month', -1 * ltv_lookback_months() | int, 'window_end') }} as date)
        as window_start,
    window_end,
    {{ ltv_lookback_months() }} as lookback_months,
    {{ discount_rate() }} as discount_rate,
    cast({{ dbt.dateadd('day', 1 - clv_holdout_days() | int, 'as_of_date') }} as date)
        as holdout_start_date

from bounds
