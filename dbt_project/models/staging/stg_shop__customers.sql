with

source as (

    select * from {{ source('shop', 'customers') }}

),

renamed as (

    select
        customer_id,
        email,
        signup_date,
        acquisition_channel,
        country as country_code

    from source

)

select * from renamed
