with

source as (

    select * from {{ source('shop', 'orders') }}

),

renamed as (

    select
        order_id,
        customer_id,
        ordered_at,
        cast(ordered_at as date) as ordered_date,
        status as order_status,
        amount as order_amount,
        cost as order_cost,
        currency as currency_code

    from source

)

select * from renamed
