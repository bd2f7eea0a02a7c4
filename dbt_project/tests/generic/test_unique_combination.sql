{#- Fails for each combination of columns that appears more than once (dbt_utils' test, which
    cannot be installed without the dbt hub). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as copies
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
