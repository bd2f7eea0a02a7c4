{#- Fails for each month where active_at_end differs from active_at_start - churned + new +
    reactivated, or from the next month's active_at_start. -#}
{% test churn_flow_balances(model) %}
with ordered as (
    select
        *,
        lead(active_at_start) over (order by month_start) as next_active_at_start
    from {{ model }}
)
select month_start
from ordered
where
    active_at_end
    <> active_at_start - churned_customers + new_customers + reactivated_customers
    or (next_active_at_start is not null and next_active_at_start <> active_at_end)
{% endtest %}
