{#- LTV building blocks and variants per segment, in a dimension / dimension_value shape:
    ('overall', 'all'), ('acquisition_channel', <channel>), ('country', <code>). One model keeps
    every segment on the same definitions; BI filters on dimension. A new dimension is one more
    branch of the segments union. -#}
with

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

windows as (

    select * from {{ ref('int_customer_windows_aggregated') }}

),

segments as (

    select
        customer_id,
        'overall' as dimension,
        'all' as dimension_value
    from customers
    union all
    select
        customer_id,
        'acquisition_channel' as dimension,
        acquisition_channel as dimension_value
    from customers
    union all
    select
        customer_id,
        'country' as dimension,
        country_code as dimension_value
    from customers

),

aggregated as (

    select
        segments.dimension,
        segments.dimension_value,
        count(*) as customers,
        sum(case when windows.window_purchases > 0 then 1 else 0 end) as window_customers,
        sum(windows.window_purchases) as window_purchases,
        sum(windows.window_net_revenue) as window_net_revenue,
        sum(windows.window_gross_margin) as window_gross_margin,
        sum(windows.window_months_active_at_start) as window_months_active_at_start,
        sum(windows.window_churn_events) as window_churn_events,
        sum(windows.window_active_months) as window_active_months

    from windows
    inner join segments on windows.customer_id = segments.customer_id
    group by segments.dimension, segments.dimension_value

),

rates as (

    select
        *,
        cast(window_net_revenue as {{ type_double() }}) / nullif(window_purchases, 0)
            as average_purchase_value,
        {{ purchase_frequency('window_purchases', 'window_customers') }}
            as purchase_frequency,
        cast(window_churn_events as {{ type_double() }})
        / nullif(window_months_active_at_start, 0) as monthly_churn_rate,
        cast(window_gross_margin as {{ type_double() }})
        / nullif(window_net_revenue, 0) as gross_margin_rate,
        cast(window_net_revenue as {{ type_double() }})
        / nullif(window_active_months, 0) as monthly_arpu

    from aggregated

),

lifespans as (

    select
        *,
        {{ annual_churn_rate('coalesce(monthly_churn_rate, 0)') }} as annual_churn_rate,
        {{ customer_lifespan_years(annual_churn_rate('coalesce(monthly_churn_rate, 0)')) }}
            as customer_lifespan_years

    from rates

),

ltv as (

    select
        *,
        {{ historical_ltv(
            'average_purchase_value', 'purchase_frequency', 'customer_lifespan_years'
        ) }} as historical_ltv,
        {{ historical_ltv(
            'average_purchase_value', 'purchase_frequency', 'customer_lifespan_years'
        ) }} * gross_margin_rate as margin_ltv,
        monthly_arpu * gross_margin_rate / nullif(monthly_churn_rate, 0) as subscription_ltv,
        average_purchase_value * purchase_frequency * gross_margin_rate as yearly_margin

    from lifespans

),

years as (

    {{ integer_sequence(100) }}

),

discounted as (

    select
        ltv.dimension,
        ltv.dimension_value,
        sum(
            ltv.yearly_margin * power(1 - ltv.annual_churn_rate, years.n)
            / power(1 + {{ discount_rate() }}, years.n)
        ) as discounted_ltv

    from ltv
    inner join years on ltv.customer_lifespan_years > years.n
    group by ltv.dimension, ltv.dimension_value

),

final as (

    select
        ltv.dimension,
        ltv.dimension_value,
        reporting_window.as_of_date,
        reporting_window.window_start,
        reporting_window.window_end,
        ltv.customers,
        ltv.window_customers,
        ltv.window_purchases,
        ltv.window_net_revenue,
        ltv.window_gross_margin,
        ltv.average_purchase_value,
        ltv.purchase_frequency,
        ltv.monthly_churn_rate,
        ltv.annual_churn_rate,
        ltv.customer_lifespan_years,
        ltv.gross_margin_rate,
        ltv.historical_ltv,
        ltv.margin_ltv,
        discounted.discounted_ltv,
        ltv.monthly_arpu,
        ltv.subscription_ltv

    from ltv
    cross join reporting_window
    left join discounted
        on
            ltv.dimension = discounted.dimension
            and ltv.dimension_value = discounted.dimension_value

)

select * from final
