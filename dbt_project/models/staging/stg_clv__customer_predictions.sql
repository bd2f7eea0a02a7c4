with

source as (

    select * from {{ source('clv', 'customer_predictions') }}

),

renamed as (

    select
        customer_id,
        p_alive,
        expected_purchases,
        expected_order_value,
        predicted_revenue,
        predicted_clv

    from source

)

select * from renamed
