{#- Fails for each row where the condition holds and column_name is not > 0. -#}
{% test positive_when(model, column_name, condition) %}
select {{ column_name }}
from {{ model }}
where ({{ condition }}) and not coalesce({{ column_name }} > 0, false)
{% endtest %}
