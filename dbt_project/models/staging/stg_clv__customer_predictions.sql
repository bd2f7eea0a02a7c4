{#- Money as decimals: their sums are exact in any order, so marts summing predictions come
    out bit-identical from run to run (parallel sums of doubles do not). Ephemeral (a CTE in
    the marts that read it, no table): the predictions are a mart the Python step writes, so
    as an asset of its own this model would run the lineage back from marts into staging
    (a cycle between the two groups in Dagster's UI). Its keys are checked on the Python
    asset (predictions_cover_buyers_and_are_valid). -#}
{{ config(materialized='ephemeral') }}
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
