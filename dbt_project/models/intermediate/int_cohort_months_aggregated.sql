{#- One row per acquisition channel, cohort month and month since acquisition: what the
    cohort's customers of that channel did in the month. cohort_activity sums it over
    channels; ltv_cac_by_channel and the Python LTV curves use it per channel. -#}
with

customer_months as (

    select * from {{ ref('int_customer_months_classified') }}

),

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

aggregated as (

    select
        customers.acquisition_channel,
        customer_months.cohort_month,
        customer_months.months_since_acquisition,
        min(customer_months.month_start) as month_start,
        sum(case when customer_months.is_new then 1 else 0 end) as new_customers,
        sum(case when customer_months.purchases > 0 then 1 else 0 end) as active_customers,
        sum(customer_months.purchases) as purchases,
        sum(customer_months.net_revenue) as net_revenue,
        sum(customer_months.gross_margin) as gross_margin

    from customer_months
    inner join customers on customer_months.customer_id = customers.customer_id
    group by
        customers.acquisition_channel,
        customer_months.cohort_month,
        customer_months.months_since_acquisition

),

sized as (

    select
        *,
        sum(new_customers) over (
            partition by acquisition_channel, cohort_month
        ) as acquired_customers

    from aggregated

)

select * from sized
