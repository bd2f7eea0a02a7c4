with

source as (

    select * from {{ source('shop', 'marketing_spend') }}

),

renamed as (

    select
        {{ dbt.concat([
            "cast(" ~ adapter.quote("date") ~ " as " ~ dbt.type_string() ~ ")", "'|'", "channel"
        ]) }} as marketing_spend_id,
        {{ adapter.quote("date") }} as spend_date,
        channel as acquisition_channel,
        spend as spend_amount

    from source

)

select * from renamed
