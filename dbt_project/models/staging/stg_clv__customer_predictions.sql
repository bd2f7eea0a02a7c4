{#- Money as decimals: their sums are exact in any order, so marts summing predictions come
    out bit-identical from run to run (parallel sums of doubles do not). -#}
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
        cast(predicted_revenue as decimal(18, 6)) as predicted_revenue,
        cast(predicted_clv as decimal(18, 6)) as predicted_clv

    from source

)

select * from renamed
