{#- historical_ltv uses the customer's own APV and APF over the lookback window and the shop's
    overall customer lifespan (ltv_summary), with the same formula as ltv_summary; null while
    that lifespan cannot be estimated reliably. Purchases are purchase days; the totals come
    from int_customer_windows_aggregated (summed from the spells). -#}
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

reporting_window as (

    select * from {{ ref('int_reporting_window') }}

),

windows as (

    select * from {{ ref('int_customer_windows_aggregated') }}

),

overall as (

    select customer_lifespan_years
    from {{ ref('ltv_summary') }}
    where dimension = 'overall'

),

joined as (

    select
        customers.customer_id,
        customers.acquisition_channel,
        customers.country_code,
        customers.signup_date,
        windows.first_purchase_date as first_order_date,
        windows.last_purchase_date as last_order_date,
        windows.purchases,
        windows.net_revenue,
        windows.gross_margin,
        windows.window_purchases,
        windows.window_net_revenue,
        overall.customer_lifespan_years,
        reporting_window.as_of_date

    from customers
    cross join reporting_window
    cross join overall
    left join windows
        on customers.customer_id = windows.customer_id
    where customers.signup_date <= reporting_window.as_of_date

),

final as (

    select
        customer_id,
        acquisition_channel,
        country_code,
        signup_date,
        cast({{ dbt.date_trunc('month', 'first_order_date') }} as date) as cohort_month,
        first_order_date,
        last_order_date,
        {{ as_count('coalesce(purchases, 0)') }} as purchases,
        {{ as_money('coalesce(net_revenue, 0)') }} as net_revenue,
        {{ as_money('coalesce(gross_margin, 0)') }} as gross_margin,
        cast(net_revenue as {{ type_double() }}) / purchases as average_purchase_value,
        {{ dbt.datediff('first_order_date', 'as_of_date', 'day') }}
            as tenure_days,
        {{ dbt.datediff('last_order_date', 'as_of_date', 'day') }}
            as days_since_last_purchase,
        purchases is not null as has_purchased,
        coalesce(
            {{ dbt.datediff('last_order_date', 'as_of_date', 'day') }}
            > {{ churn_inactivity_days() }},
            false
        ) as is_churned,
        {{ as_count('coalesce(window_purchases, 0)') }} as window_purchases,
        case
            when coalesce(window_purchases, 0) = 0 then 0 * customer_lifespan_years
            else {{ historical_ltv(
                'cast(window_net_revenue as ' ~ type_double() ~ ') / window_purchases',
                purchase_frequency('window_purchases', 1),
                'customer_lifespan_years'
            ) }}
        end as historical_ltv,
        as_of_date

    from joined

)

select * from final
