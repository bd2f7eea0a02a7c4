{#- One row per acquisition channel, cohort month and month since acquisition, over the
    complete months (before window_end): macro cohort_month_cells. int_cohort_months_aggregated
    adds the as-of month to it. Like int_tenure_months_aggregated it reads complete months
    alone, so on DuckDB a night whose orders all fall in the as-of month keeps it, and it is
    rebuilt only on a new month, a customer's channel or country changed, or an order dated
    before window_end new, changed or gone (macro decide_complete_months_build; the churn
    setting is in that key too, though no cell depends on it). At 100M orders this regrouping
    of every purchase month was 12.6 s of a night (bench/results). A table on Spark and for a
    backfill. -#}
{{ kept_complete_months_config() }}
-- depends_on: {{ ref('int_customer_purchases_accumulated') }}
with

{# on a night that keeps the table, no row: the cells below read this one #}
reporting_window as (

    select window_end
    from {{ ref('int_reporting_window') }}
    {% if is_incremental() %}
        where {{ is_complete_months_rebuild() }}
    {% endif %}

),

cells as (

    {{ cohort_month_cells('spells.month_start < reporting_window.window_end') }}

)

select * from cells
