{#- The marts' month sequences (integer_sequence(month_sequence_size())) would silently end
    after month_sequence_size() months: fail when the first order is that far before the as-of
    date (LTV_EARLIEST_DATE keeps such rows out of raw; this catches what gets past it). -#}
select
    first_order_date,
    as_of_date,
    history_months
from {{ ref('int_reporting_window') }}
where history_months >= {{ month_sequence_size() }}
