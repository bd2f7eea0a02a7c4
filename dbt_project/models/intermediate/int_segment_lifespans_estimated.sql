{#- One row per segment: the customer lifespan estimated from tenure, and how much history
    supports it. Expected active months = the area under the still-active curve
    (int_tenure_months_aggregated: sum over observed tenure months of the share of customers
    still active at the month's end) plus a geometric tail beyond the last observed month.
    The tail's monthly decline is fitted (least squares of ln share, weighted by exposed
    customers) over the second half of the months after the churn window, where the curve
    has settled, and starts from the fitted share at the last observed month.
    The estimate is reliable when the history covers the churn window plus
    min_months_beyond_churn_window months, at least min_churn_events churn events were seen,
    the curve declines, and at most max_extrapolated_share of the estimate is the tail;
    otherwise customer_lifespan_years is null and unreliable_reason says why (a lifespan that
    cannot be observed is not a 10-year cap). -#}
with

curve as (

    select * from {{ ref('int_tenure_months_aggregated') }}

),

observed as (

    select
        dimension,
        dimension_value,
        max(tenure_month) + 1 as months_observed,
        sum(case when tenure_month = 0 then exposed_customers else 0 end) as customers,
        sum(churned_customers) as churn_events,
        {#- summed as decimals: exact in any row order, so a night equals a full refresh bit
            for bit (sums of doubles depend on the order rows arrive in) -#}
        cast(
            sum(cast(still_active_share as decimal(38, 18))) as {{ type_double() }}
        ) as observed_active_months

    from curve
    group by dimension, dimension_value

),

{#- the points the tail is fitted on: the second half of the months after the churn window -#}
settled as (

    select
        curve.dimension,
        curve.dimension_value,
        {#- exact decimals whose products fit 38 digits on both engines (Spark would cut
            the scale of a wider product) -#}
        cast(curve.exposed_customers as decimal(12, 0)) as w,
        cast(curve.tenure_month as decimal(4, 0)) as x,
        cast(ln(curve.still_active_share) as decimal(20, 15)) as y

    from curve
    inner join observed
        on
            curve.dimension = observed.dimension
            and curve.dimension_value = observed.dimension_value
    where
        curve.still_active_share > 0
        and 2 * curve.tenure_month >= {{ churn_window_months() }} + observed.months_observed - 1

),

sums as (

    select
        dimension,
        dimension_value,
        count(*) as points,
        cast(sum(w) as {{ type_double() }}) as sw,
        cast(sum(w * x) as {{ type_double() }}) as swx,
        cast(sum(w * y) as {{ type_double() }}) as swy,
        cast(sum(w * x * x) as {{ type_double() }}) as swxx,
        cast(sum(w * x * y) as {{ type_double() }}) as swxy

    from settled
    group by dimension, dimension_value

),

fitted as (

    select
        observed.*,
        sums.sw,
        sums.swx,
        sums.swy,
        case
            when sums.points >= 2
                then
                    (sums.sw * sums.swxy - sums.swx * sums.swy)
                    / nullif(sums.sw * sums.swxx - sums.swx * sums.swx, 0)
        end as log_decline

    from observed
    left join sums
        on
            observed.dimension = sums.dimension
            and observed.dimension_value = sums.dimension_value

),

tails as (

    select
        *,
        case
            when log_decline < 0
                then
                    exp((swy - log_decline * swx) / sw + log_decline * (months_observed - 1))
                    * exp(log_decline) / (1 - exp(log_decline))
        end as tail_active_months

    from fitted

),

shares as (

    select
        *,
        tail_active_months / (observed_active_months + tail_active_months) as extrapolated_share

    from tails

),

{%- set window_months = churn_window_months() | int %}
{%- set beyond = min_months_beyond_churn_window() | int %}
{%- set history_note = " complete tenure months is shorter than the churn window ("
    ~ window_months ~ " months) plus " ~ beyond %}
{%- set events_note = " churn events seen, fewer than min_churn_events ("
    ~ min_churn_events() ~ ")" %}
{%- set tail_note = "% of the lifespan would be extrapolated beyond the history"
    ~ " (more than max_extrapolated_share, " ~ max_extrapolated_share() ~ ")" %}

judged as (

    select
        *,
        case
            when months_observed < {{ window_months + beyond }}
                then
                    'history of ' || cast(months_observed as {{ dbt.type_string() }})
                    || '{{ history_note }}'
            when churn_events < {{ min_churn_events() }}
                then cast(churn_events as {{ dbt.type_string() }}) || '{{ events_note }}'
            when log_decline is null or log_decline >= 0
                then 'the still-active curve does not decline after the churn window'
            when extrapolated_share > {{ max_extrapolated_share() }}
                then
                    cast(
                        cast(round(100 * extrapolated_share) as {{ dbt.type_int() }})
                        as {{ dbt.type_string() }}
                    )
                    || '{{ tail_note }}'
        end as unreliable_reason

    from shares

),

final as (

    select
        dimension,
        dimension_value,
        months_observed,
        customers,
        churn_events,
        observed_active_months,
        tail_active_months,
        extrapolated_share,
        case when unreliable_reason is null then 1 - exp(log_decline) end
            as tail_monthly_churn_rate,
        case
            when unreliable_reason is null then observed_active_months + tail_active_months
        end as expected_active_months,
        case
            when unreliable_reason is null
                then least(
                    (observed_active_months + tail_active_months) / 12.0,
                    {{ max_lifespan_years() }}
                )
        end as customer_lifespan_years,
        unreliable_reason is null as is_reliable,
        unreliable_reason

    from judged

)

select * from final
