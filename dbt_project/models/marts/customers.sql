with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

purchases as (

    select * from {{ ref('int_orders_valued') }}
    where is_purchase

),

as_of as (

    select {{ as_of_date() }} as as_of_date

),

customer_purchases as (

    select
        customer_id,
        min(ordered_date) as first_order_date,
        max(ordered_date) as last_order_date,
        count(*) as orders,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin

    from purchases
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.acquisition_channel,
        customers.country_code,
        customers.signup_date,
        cast({{ dbt.date_trunc('month', 'customer_purchases.first_order_date') }} as date)
            as cohort_month,
        customer_purchases.first_order_date,
        customer_purchases.last_order_date,
        coalesce(customer_purchases.orders, 0) as orders,
        coalesce(customer_purchases.net_revenue, 0) as net_revenue,
        coalesce(customer_purchases.gross_margin, 0) as gross_margin,
        customer_purchases.net_revenue / customer_purchases.orders as average_order_value,
        {{ dbt.datediff('customer_purchases.first_order_date', 'as_of.as_of_date', 'day') }}
            as tenure_days,
        customer_purchases.customer_id is not null as has_purchased,
        as_of.as_of_date

    from customers
    cross join as_of
    left join customer_purchases
        on customers.customer_id = customer_purchases.customer_id
    where customers.signup_date <= as_of.as_of_date

)

select * from final
