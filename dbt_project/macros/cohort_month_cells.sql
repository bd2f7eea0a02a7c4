{#- One row per acquisition channel, cohort month and month since acquisition, over the
    purchase months (int_customer_spells_classified) that satisfy `months`, a condition on
    `spells` and the one-row `reporting_window` CTE: the cohort's new and active (purchasing)
    customers, purchases, net revenue and gross margin in the month. A cell is one calendar
    month, so splitting the months at window_end splits the cells: the complete months are
    kept by int_complete_cohort_months_aggregated, and int_cohort_months_aggregated adds the
    as-of month's with the same definition. -#}
{% macro cohort_month_cells(months) -%}
    select
        customers.acquisition_channel,
        spells.cohort_month,
        spells.months_since_acquisition,
        sum(case when spells.is_new then 1 else 0 end) as new_customers,
        sum(case when spells.purchases > 0 then 1 else 0 end) as active_customers,
        sum(spells.purchases) as purchases,
        sum(spells.net_revenue) as net_revenue,
        sum(spells.gross_margin) as gross_margin

    from {{ ref('int_customer_spells_classified') }} as spells
    inner join {{ ref('stg_shop__customers') }} as customers
        on spells.customer_id = customers.customer_id
    cross join reporting_window
    where {{ months }}
    group by
        customers.acquisition_channel,
        spells.cohort_month,
        spells.months_since_acquisition
{%- endmacro %}
