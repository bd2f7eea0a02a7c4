{#- One row: the as-of date and the LTV lookback window, the last ltv_lookback_months complete
    months up to as_of_date ([window_start, window_end)), and the CLV backtest's holdout (the last
    clv_holdout_days days up to as_of_date). A one-row parameter model, so it does
    not follow the int_<entity>s_<verb>s naming.
    history_months counts the months from the first order's to the as-of month: the marts' month
    sequences hold month_sequence_size() months, and a test fails the build when the history
    is longer rather than let them cut it off. -#}
with

as_of as (

    select
        {{ as_of_date() }} as as_of_date,
        (select min(cast(ordered_at as date)) from {{ ref('stg_shop__orders') }})
            as first_order_date

),

bounds as (

    select
        as_of_date,
        first_order_date,
        case
            when as_of_date = cast({{ dbt.last_day('as_of_date', 'month') }} as date)
                then cast({{ dbt.dateadd('day', 1, 'as_of_date') }} as date)
            else cast({{ dbt.date_trunc('month', 'as_of_date') }} as date)
        end as window_end

    from as_of

)

select
    as_of_date,
    first_order_date,
    cast({{ dbt.dateadd('month', -1 * ltv_lookback_months() | int, 'window_end') }} as date)
        as window_start,
    window_end,
    {{ ltv_lookback_months() }} as lookback_months,
    {{ discount_rate() }} as discount_rate,
    {{ ltv_cac_bar() }} as ltv_cac_bar,
    cast({{ dbt.dateadd('day', 1 - clv_holdout_days() | int, 'as_of_date') }} as date)
        as holdout_start_date,
    {{ dbt.datediff(
        'first_order_date', 'as_of_date', 'month'
    ) }} as history_months

from bounds
