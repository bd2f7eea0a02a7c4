-- The hand-written baseline of issue 18: the marts of the pipeline from the raw files in one
-- DuckDB script, written from the definitions (README "Definitions"), not from the models.
--
-- bench/baseline.py fills in the {{...}} placeholders: the sources ({{customers_source}},
-- {{orders_source}}, {{spend_source}}: a read_parquet or an all-varchar read_csv), the typed
-- value of each id, date and money column ({{o_order_id}}, ...: a plain expression when the
-- Parquet column is already typed, else the text rule), the output schema ({{out}}, schema
-- baseline of the open database) and the run's vars. Bad rows are dropped, not
-- quarantined: a row is kept only if it passes every row rule of the loader, its key is not a
-- conflicting duplicate (one copy of an exact duplicate stays) and, for an order, its customer
-- is a clean customer who had signed up by the order's UTC day. No model is fitted: the
-- Python marts (the predictions and the predicted value against CAC) are not built.
--
-- The marts' monthly states come from one row per customer and purchase month: its spell
-- lasts until the next purchase month, and whether and when it ends in churn follows from the
-- month's last purchase day. Monthly counts and window sums are then interval arithmetic on
-- month numbers (year * 12 + month - 1), with no row per customer-month without a purchase.
--
-- Published types as the marts' contracts: counts BIGINT, money DOUBLE (fct_orders: DECIMAL), cast
-- in each final select; money is summed as DECIMAL, read back as decimal(18, s) from a DOUBLE.

set preserve_insertion_order = false;
set TimeZone = 'UTC';

create schema if not exists {{out}};

-- the loader's text rules (ltv_pipeline.ingest.rules), for text columns
create or replace temp macro blank(x) as nullif(trim(x), '') is null;
create or replace temp macro id_text(x) as
    case when regexp_full_match(trim(x), '[+]?0*[1-9][0-9]*') then try_cast(trim(x) as bigint) end;
create or replace temp macro money_text(x) as
    case
        when regexp_full_match(trim(x), '[+-]?([0-9]+|[0-9]*[.][0-9]{1,2}0*)')
            then try_cast(trim(x) as decimal(18, 2))
    end;
-- a double's shortest text has at most 2 decimals iff some cents value rounds to it (below
-- 1e13, where doubles are denser than cents): the loader's text rule without the text
create or replace temp macro money_double(c) as
    case
        when isfinite(c) and abs(c) < 1e13
            then case when round(c * 100) / 100 = c then cast(c as decimal(18, 2)) end
        else money_text(cast(c as varchar))
    end;
create or replace temp macro iso_shaped(x) as regexp_full_match(
    x,
    '[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ]([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]+)?)?( ?[A-Za-z+-].*)?)?'
);
-- a UTC instant as a naive timestamp by epoch arithmetic (the session is in UTC)
create or replace temp macro utc_iso(x) as
    case when iso_shaped(x) then make_timestamp(epoch_us(try_cast(x as timestamptz))) end;
create or replace temp macro date_iso(x) as case when iso_shaped(x) then try_cast(x as date) end;
create or replace temp macro basic_date(x) as
    case when regexp_full_match(x, '([0-9]{4})([0-9]{2})([0-9]{2})')
        then concat(x[1:4], '-', x[5:6], '-', x[7:8])
    end;
create or replace temp macro utc_text(raw) as coalesce(
    utc_iso(trim(raw)),
    case
        when regexp_full_match(
            trim(raw),
            '([0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[ T](?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.][0-9]{1,9})?)?) (Z|[+-][0-9]{2}(?::?[0-9]{2})?)'
        )
            then utc_iso(regexp_replace(trim(raw), ' (Z|[+-][0-9]{2}(?::?[0-9]{2})?)$', '\1'))
    end,
    utc_iso(basic_date(trim(raw)))
);
create or replace temp macro date_text(raw) as
    coalesce(date_iso(trim(raw)), date_iso(basic_date(trim(raw))));
create or replace temp macro month_no(d) as year(d) * 12 + month(d) - 1;
create or replace temp macro month_date(n) as make_date(cast(n // 12 as bigint), cast(n % 12 + 1 as bigint), 1);

-- ---------------------------------------------------------------------------------------
-- Clean rows
-- ---------------------------------------------------------------------------------------

create temp table customers_typed as
with src as (select * from {{customers_source}}),
typed as (
    select
        {{c_customer_id}} as customer_id,
        nullif(trim(cast(email as varchar)), '') as email,
        {{c_signup_date}} as signup_date,
        lower(nfc_normalize(trim(cast(acquisition_channel as varchar)))) as acquisition_channel,
        upper(trim(cast(country as varchar))) as country_code,
        blank(cast(acquisition_channel as varchar)) or blank(cast(country as varchar))
        or coalesce(
            not blank(cast(email as varchar)) and trim(cast(email as varchar)) not like '%_@_%',
            false
        ) as bad_text
    from src
)
select customer_id, email, signup_date, acquisition_channel, country_code
from typed
where
    customer_id is not null
    and signup_date is not null
    and signup_date >= {{earliest_date}}
    and signup_date <= {{load_date}}
    and not bad_text
    and regexp_full_match(country_code, '[A-Z]{2}');

create temp table clean_customers as
with keys as (
    select customer_id, min(hash(customer_id, email, signup_date, acquisition_channel, country_code)) = max(hash(customer_id, email, signup_date, acquisition_channel, country_code)) as same
    from customers_typed
    group by customer_id
    having count(*) > 1
)
select customer_id, signup_date, acquisition_channel, country_code
from customers_typed
anti join keys using (customer_id)
union all
select customer_id, any_value(signup_date), any_value(acquisition_channel), any_value(country_code)
from customers_typed
semi join (select customer_id from keys where same) using (customer_id)
group by customer_id;

create temp table orders_typed as
with src as (select * from {{orders_source}}),
typed as (
    select
        {{o_order_id}} as order_id,
        {{o_customer_id}} as customer_id,
        {{o_ordered_at}} as ordered_at,
        lower(trim(cast(status as varchar))) as order_status,
        {{o_amount}} as order_amount,
        {{o_cost}} as order_cost,
        {{o_cost_blank}} as cost_blank,
        upper(trim(cast(currency as varchar))) as currency_code
    from src
)
select order_id, customer_id, ordered_at, order_status, order_amount, order_cost, currency_code
from typed
where
    order_id is not null
    and customer_id is not null
    and ordered_at is not null
    and ordered_at >= {{earliest_date}}
    and ordered_at <= {{load_time}}
    and order_status in ('completed', 'refunded', 'cancelled')
    and order_amount >= 0
    and (cost_blank or order_cost >= 0)
    and currency_code = {{currency}};

-- keys held more than once: all copies identical -> one stays, else none
create temp table order_keys as
select order_id, min(h) = max(h) as same
from (
    select order_id, hash(order_id, customer_id, ordered_at, order_status, order_amount, order_cost, currency_code) as h
    from orders_typed
    semi join (select order_id from orders_typed group by order_id having count(*) > 1) using (order_id)
)
group by order_id;

-- the customer check attaches the channel and country to each order
create temp table orders as
with deduplicated as (
    select order_id, customer_id, ordered_at, order_status, order_amount, order_cost
    from orders_typed
    anti join order_keys using (order_id)
    union all
    select order_id, any_value(customer_id), any_value(ordered_at), any_value(order_status),
        any_value(order_amount), any_value(order_cost)
    from orders_typed
    semi join (select order_id from order_keys where same) using (order_id)
    group by order_id
)
select
    o.order_id,
    o.customer_id,
    o.ordered_at,
    cast(o.ordered_at as date) as ordered_date,
    o.order_status,
    o.order_amount,
    o.order_cost,
    c.acquisition_channel,
    c.country_code
from deduplicated as o
join clean_customers as c on o.customer_id = c.customer_id
where cast(o.ordered_at as date) >= c.signup_date;

create temp table spend_typed as
with src as (select * from {{spend_source}}),
typed as (
    select
        {{s_date}} as spend_date,
        lower(nfc_normalize(trim(cast(channel as varchar)))) as acquisition_channel,
        {{s_spend}} as spend_amount,
        blank(cast(channel as varchar)) as channel_blank
    from src
)
select spend_date, acquisition_channel, spend_amount
from typed
where
    spend_date is not null
    and spend_date >= {{earliest_date}}
    and not channel_blank
    and spend_amount >= 0;

create temp table spend as
with keys as (
    select spend_date, acquisition_channel, min(hash(spend_date, acquisition_channel, spend_amount)) = max(hash(spend_date, acquisition_channel, spend_amount)) as same
    from spend_typed
    group by all
    having count(*) > 1
)
select spend_date, acquisition_channel, spend_amount
from spend_typed
anti join keys using (spend_date, acquisition_channel)
union all
select spend_date, acquisition_channel, any_value(spend_amount)
from spend_typed
semi join (select spend_date, acquisition_channel from keys where same)
    using (spend_date, acquisition_channel)
group by spend_date, acquisition_channel;

-- ---------------------------------------------------------------------------------------
-- The run's dates
-- ---------------------------------------------------------------------------------------

create temp table run as
with d as (
    select coalesce({{as_of_date}}, max(ordered_date)) as as_of_date from orders
),
e as (
    select
        as_of_date,
        case
            when as_of_date = last_day(as_of_date) then as_of_date + 1
            else date_trunc('month', as_of_date)::date
        end as window_end
    from d
)
select
    as_of_date,
    window_end,
    (window_end - interval ({{ltv_lookback_months}}) month)::date as window_start,
    as_of_date + (1 - {{clv_holdout_days}}) as holdout_start_date,
    month_no(as_of_date) as as_of_m,
    month_no(window_end) as end_m,
    month_no(window_end) - {{ltv_lookback_months}} as start_m
from e;

-- ---------------------------------------------------------------------------------------
-- fct_orders
-- ---------------------------------------------------------------------------------------

create or replace table {{out}}.fct_orders as
select
    order_id,
    customer_id,
    ordered_at,
    ordered_date,
    order_status,
    order_amount,
    order_cost,
    order_status = 'completed' as is_purchase,
    order_cost is null as is_cost_imputed,
    case when order_status = 'completed' then order_amount else 0 end as net_revenue,
    -- typed decimal(21,4) whatever the rate's literal, as the pipeline's order_gross_margin
    cast(
        case
            when order_status <> 'completed' then 0
            when order_cost is not null then order_amount - order_cost
            else order_amount * {{default_margin_rate}}
        end as decimal(21, 4)
    ) as gross_margin
from orders;

-- purchases: completed orders of one customer on one UTC day, up to as_of_date
create temp table purchases as
select
    customer_id,
    ordered_date as purchase_date,
    any_value(acquisition_channel) as acquisition_channel,
    any_value(country_code) as country_code,
    sum(order_amount) as net_revenue,
    sum(
        cast(
            case
                when order_cost is not null then order_amount - order_cost
                else order_amount * {{default_margin_rate}}
            end as decimal(21, 4)
        )
    ) as gross_margin
from orders
where order_status = 'completed'
group by customer_id, ordered_date;

-- ---------------------------------------------------------------------------------------
-- Spells: one row per customer and purchase month up to as_of_date
-- ---------------------------------------------------------------------------------------

create temp table spells as
with monthly as (
    select
        customer_id,
        month_no(purchase_date) as m,
        any_value(acquisition_channel) as acquisition_channel,
        any_value(country_code) as country_code,
        count(*) as purchases,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin,
        max(purchase_date) as last_day_in_month
    from purchases
    where purchase_date <= (select as_of_date from run)
    group by customer_id, month_no(purchase_date)
),
ordered as (
    select
        *,
        first_value(m) over spell as cohort_m,
        lead(m) over spell as next_m,
        lag(last_day_in_month) over spell as prev_last_day
    from monthly
    window spell as (partition by customer_id order by m)
),
bounds as (
    select
        o.*,
        month_no(o.last_day_in_month + ({{churn_inactivity_days}} + 1)) as churn_m,
        o.last_day_in_month + ({{churn_inactivity_days}} + 1) <= r.as_of_date as lapses_by_as_of,
        coalesce(o.next_m, 1000000000) as next_or_never,
        r.as_of_m,
        r.end_m,
        r.start_m
    from ordered as o cross join run as r
)
select
    customer_id,
    acquisition_channel,
    country_code,
    m,
    cohort_m,
    purchases,
    net_revenue,
    gross_margin,
    m = cohort_m as is_new,
    coalesce(month_date(m) - 1 - prev_last_day <= {{churn_inactivity_days}}, false) as active_at_start,
    m > cohort_m and not coalesce(month_date(m) - 1 - prev_last_day <= {{churn_inactivity_days}}, false)
        as reactivated,
    -- the churn month, when the spell ends in churn by as_of_date
    case when lapses_by_as_of and churn_m < next_or_never then churn_m end as churned_m,
    -- months (m, start_until]: active at their start; [m, end_until]: active at their end
    least(churn_m, next_or_never, as_of_m) as start_until,
    least(next_or_never - 1, case when lapses_by_as_of then churn_m - 1 else as_of_m end) as end_until,
    -- months [m, listed_until]: active at the start or buying (the months the spell lists)
    least(churn_m, next_or_never - 1, as_of_m) as listed_until,
    end_m,
    start_m
from bounds;

-- ---------------------------------------------------------------------------------------
-- customers
-- ---------------------------------------------------------------------------------------

create temp table customer_totals as
select
    customer_id,
    min(purchase_date) as first_order_date,
    max(purchase_date) as last_order_date,
    count(*) as purchases,
    sum(net_revenue) as net_revenue,
    sum(gross_margin) as gross_margin
from purchases
where purchase_date <= (select as_of_date from run)
group by customer_id;

create temp table customer_windows as
select
    customer_id,
    sum(case when m >= start_m and m < end_m then purchases else 0 end) as window_purchases,
    sum(case when m >= start_m and m < end_m then net_revenue else 0 end) as window_net_revenue,
    sum(case when m >= start_m and m < end_m then gross_margin else 0 end) as window_gross_margin,
    sum(greatest(least(listed_until, end_m - 1) - greatest(m, start_m) + 1, 0)) as window_active_months
from spells
group by customer_id;

-- ---------------------------------------------------------------------------------------
-- Lifespan from tenure: the still-active life table per segment
-- ---------------------------------------------------------------------------------------

create temp table tenure_events as
-- active at the end of tenure months [m, end_until] (complete months only), churn at churned_m
select
    acquisition_channel, country_code, m - cohort_m as k, 1 as d_active, 0 as churned
from spells
where m < end_m
union all
select acquisition_channel, country_code, least(end_until, end_m - 1) + 1 - cohort_m, -1, 0
from spells
where m < end_m
union all
select acquisition_channel, country_code, churned_m - cohort_m, 0, 1
from spells
where churned_m < end_m;

create temp table tenure_curve as
with segmented as (
    select 'overall' as dimension, 'all' as dimension_value, k, d_active, churned from tenure_events
    union all
    select 'acquisition_channel', acquisition_channel, k, d_active, churned from tenure_events
    union all
    select 'country', country_code, k, d_active, churned from tenure_events
),
events as (
    select dimension, dimension_value, k, sum(d_active) as d_active, sum(churned) as churned
    from segmented
    group by all
),
cohort_sizes as (
    select acquisition_channel, country_code, cohort_m, count(*) as acquired,
        any_value(end_m - cohort_m) as complete
    from spells
    where is_new
    group by acquisition_channel, country_code, cohort_m
),
cells as (
    select c.acquisition_channel, c.country_code, c.cohort_m, c.acquired, cast(k.k as integer) as k
    from cohort_sizes as c
    join range(0, 1000) as k(k) on k.k < c.complete
),
exposure as (
    select dimension, dimension_value, k, count(distinct cohort_m) as cohorts, sum(acquired) as exposed
    from (
        select 'overall' as dimension, 'all' as dimension_value, k, cohort_m, acquired from cells
        union all
        select 'acquisition_channel', acquisition_channel, k, cohort_m, acquired from cells
        union all
        select 'country', country_code, k, cohort_m, acquired from cells
    )
    group by all
)
select
    x.dimension,
    x.dimension_value,
    x.k,
    x.exposed,
    coalesce(sum(e.d_active) over (partition by x.dimension, x.dimension_value order by x.k), 0) as active,
    coalesce(e.churned, 0) as churned
from exposure as x
left join events as e using (dimension, dimension_value, k);

create temp table lifespans as
with curve as (
    select *, cast(active as double) / exposed as share from tenure_curve
),
observed as (
    select
        dimension,
        dimension_value,
        max(k) + 1 as months_observed,
        sum(case when k = 0 then exposed else 0 end) as customers,
        sum(churned) as churn_events,
        cast(sum(cast(share as decimal(38, 18))) as double) as observed_active_months
    from curve
    group by all
),
fit as (
    select
        c.dimension,
        c.dimension_value,
        count(*) as points,
        cast(sum(w) as double) as sw,
        cast(sum(w * x) as double) as swx,
        cast(sum(w * y) as double) as swy,
        cast(sum(w * x * x) as double) as swxx,
        cast(sum(w * x * y) as double) as swxy
    from (
        select
            c.dimension,
            c.dimension_value,
            cast(c.exposed as decimal(12, 0)) as w,
            cast(c.k as decimal(4, 0)) as x,
            cast(ln(c.share) as decimal(20, 15)) as y
        from curve as c
        join observed as o using (dimension, dimension_value)
        where c.share > 0 and 2 * c.k >= {{churn_window_months}} + o.months_observed - 1
    ) as c
    group by all
),
slopes as (
    select
        o.*,
        f.sw,
        f.swx,
        f.swy,
        case
            when f.points >= 2
                then (f.sw * f.swxy - f.swx * f.swy) / nullif(f.sw * f.swxx - f.swx * f.swx, 0)
        end as b
    from observed as o
    left join fit as f using (dimension, dimension_value)
),
tails as (
    select
        *,
        case
            when b < 0
                then exp((swy - b * swx) / sw + b * (months_observed - 1)) * exp(b) / (1 - exp(b))
        end as tail
    from slopes
),
judged as (
    select
        *,
        tail / (observed_active_months + tail) as extrapolated_share,
        case
            when months_observed < {{churn_window_months}} + {{min_months_beyond_churn_window}}
                then 'history of ' || cast(months_observed as varchar)
                    || ' complete tenure months is shorter than the churn window '
                    || '({{churn_window_months}} months) plus {{min_months_beyond_churn_window}}'
            when churn_events < {{min_churn_events}}
                then cast(churn_events as varchar)
                    || ' churn events seen, fewer than min_churn_events ({{min_churn_events}})'
            when b is null or b >= 0
                then 'the still-active curve does not decline after the churn window'
            when tail / (observed_active_months + tail) > {{max_extrapolated_share}}
                then cast(cast(round(100 * (tail / (observed_active_months + tail))) as integer) as varchar)
                    || '% of the lifespan would be extrapolated beyond the history'
                    || ' (more than max_extrapolated_share, {{max_extrapolated_share}})'
        end as unreliable_reason
    from tails
)
select
    dimension,
    dimension_value,
    months_observed,
    customers,
    churn_events,
    extrapolated_share,
    case when unreliable_reason is null then observed_active_months + tail end as expected_active_months,
    case
        when unreliable_reason is null
            then least((observed_active_months + tail) / 12.0, {{max_lifespan_years}})
    end as customer_lifespan_years,
    unreliable_reason is null as is_reliable,
    unreliable_reason
from judged;

-- ---------------------------------------------------------------------------------------
-- ltv_summary
-- ---------------------------------------------------------------------------------------

create or replace table {{out}}.ltv_summary as
with buyers as (
    select w.*, c.acquisition_channel, c.country_code
    from customer_windows as w
    join clean_customers as c using (customer_id)
),
segmented as (
    select 'overall' as dimension, 'all' as dimension_value, * exclude (acquisition_channel, country_code) from buyers
    union all
    select 'acquisition_channel', acquisition_channel, * exclude (acquisition_channel, country_code) from buyers
    union all
    select 'country', country_code, * exclude (acquisition_channel, country_code) from buyers
),
sums as (
    select
        dimension,
        dimension_value,
        count(*) as customers,
        sum(case when window_purchases > 0 then 1 else 0 end) as window_customers,
        sum(window_purchases) as window_purchases,
        sum(window_net_revenue) as window_net_revenue,
        sum(window_gross_margin) as window_gross_margin,
        sum(window_active_months) as window_active_months
    from segmented
    group by all
),
rates as (
    select
        s.*,
        cast(s.window_net_revenue as double) / nullif(s.window_purchases, 0) as apv,
        cast(s.window_purchases as double) / nullif(s.window_customers, 0) * 12.0 / {{ltv_lookback_months}} as apf,
        cast(s.window_gross_margin as double) / nullif(s.window_net_revenue, 0) as gmr,
        cast(s.window_net_revenue as double) / nullif(s.window_active_months, 0) as arpu,
        l.months_observed,
        l.churn_events,
        l.customers as lifespan_customers,
        l.expected_active_months,
        l.extrapolated_share,
        l.customer_lifespan_years as cl,
        1.0 / (12 * l.customer_lifespan_years) as monthly_churn_rate,
        1 - power(1 - 1.0 / (12 * l.customer_lifespan_years), 12) as annual_churn_rate,
        coalesce(l.is_reliable, false) as is_reliable,
        coalesce(l.unreliable_reason, 'no customer with a complete month') as unreliable_reason
    from sums as s
    left join lifespans as l using (dimension, dimension_value)
),
-- years t < CL, summed in ascending t
discounted as (
    select
        dimension,
        dimension_value,
        list_reduce(
            list_transform(
                range(0, cast(ceil(cl) as bigint)),
                lambda n: apv * apf * gmr * power(1 - annual_churn_rate, n) / power(1 + {{discount_rate}}, n)
            ),
            lambda a, b: a + b
        ) as discounted_ltv
    from rates
)
select
    r.dimension,
    r.dimension_value,
    run.as_of_date,
    run.window_start,
    run.window_end,
    cast(r.customers as bigint) as customers,
    cast(r.window_customers as bigint) as window_customers,
    cast(r.window_purchases as bigint) as window_purchases,
    cast(r.window_net_revenue as double) as window_net_revenue,
    cast(r.window_gross_margin as double) as window_gross_margin,
    r.apv as average_purchase_value,
    r.apf as purchase_frequency,
    r.months_observed,
    cast(r.churn_events as bigint) as churn_events,
    cast(r.lifespan_customers as bigint) as lifespan_customers,
    r.is_reliable,
    r.expected_active_months,
    r.extrapolated_share as lifespan_extrapolated_share,
    r.monthly_churn_rate,
    r.annual_churn_rate,
    r.cl as customer_lifespan_years,
    r.gmr as gross_margin_rate,
    r.apv * r.apf * r.cl as historical_ltv,
    r.apv * r.apf * r.cl * r.gmr as margin_ltv,
    d.discounted_ltv,
    r.arpu as monthly_arpu,
    r.arpu * r.gmr / nullif(r.monthly_churn_rate, 0) as subscription_ltv,
    case when not r.is_reliable then r.unreliable_reason end as unreliable_reason
from rates as r
cross join run
left join discounted as d using (dimension, dimension_value);

create or replace table {{out}}.customers as
with overall as (
    select customer_lifespan_years as cl from {{out}}.ltv_summary where dimension = 'overall'
)
select
    c.customer_id,
    c.acquisition_channel,
    c.country_code,
    c.signup_date,
    date_trunc('month', t.first_order_date)::date as cohort_month,
    t.first_order_date,
    t.last_order_date,
    cast(coalesce(t.purchases, 0) as bigint) as purchases,
    cast(coalesce(t.net_revenue, 0) as double) as net_revenue,
    cast(coalesce(t.gross_margin, 0) as double) as gross_margin,
    cast(t.net_revenue as double) / t.purchases as average_purchase_value,
    date_diff('day', t.first_order_date, run.as_of_date) as tenure_days,
    date_diff('day', t.last_order_date, run.as_of_date) as days_since_last_purchase,
    t.purchases is not null as has_purchased,
    coalesce(date_diff('day', t.last_order_date, run.as_of_date) > {{churn_inactivity_days}}, false)
        as is_churned,
    cast(coalesce(w.window_purchases, 0) as bigint) as window_purchases,
    case
        when coalesce(w.window_purchases, 0) = 0 then 0 * overall.cl
        else
            cast(w.window_net_revenue as double) / w.window_purchases
            * (cast(w.window_purchases as double) / 1 * 12.0 / {{ltv_lookback_months}})
            * overall.cl
    end as historical_ltv,
    run.as_of_date
from clean_customers as c
cross join run
cross join overall
left join customer_totals as t using (customer_id)
left join customer_windows as w using (customer_id)
where c.signup_date <= run.as_of_date;

-- ---------------------------------------------------------------------------------------
-- churn_monthly
-- ---------------------------------------------------------------------------------------

create or replace table {{out}}.churn_monthly as
with deltas as (
    select m + 1 as month_n, 1 as d_start, 0 as d_end, 0 as new, 0 as churned, 0 as reactivated from spells where start_until > m
    union all
    select start_until + 1, -1, 0, 0, 0, 0 from spells where start_until > m
    union all
    select m, 0, 1, case when is_new then 1 else 0 end, 0, case when reactivated then 1 else 0 end from spells
    union all
    select end_until + 1, 0, -1, 0, 0, 0 from spells
    union all
    select churned_m, 0, 0, 0, 1, 0 from spells where churned_m is not null
),
per_month as (
    select month_n, sum(d_start) as d_start, sum(d_end) as d_end, sum(new) as new,
        sum(churned) as churned, sum(reactivated) as reactivated
    from deltas
    group by month_n
),
months as (
    select n as month_n
    from range((select min(cohort_m) from spells), (select as_of_m from run) + 1) as r(n)
),
counted as (
    select
        months.month_n,
        sum(coalesce(p.d_start, 0)) over (order by months.month_n) as active_at_start,
        coalesce(p.new, 0) as new_customers,
        coalesce(p.churned, 0) as churned_customers,
        coalesce(p.reactivated, 0) as reactivated_customers,
        sum(coalesce(p.d_end, 0)) over (order by months.month_n) as active_at_end
    from months
    left join per_month as p using (month_n)
)
select
    month_date(month_n) as month_start,
    least(last_day(month_date(month_n)), run.as_of_date) as month_end,
    cast(active_at_start as bigint) as active_at_start,
    cast(new_customers as bigint) as new_customers,
    cast(churned_customers as bigint) as churned_customers,
    cast(reactivated_customers as bigint) as reactivated_customers,
    cast(active_at_end as bigint) as active_at_end,
    cast(churned_customers as double) / nullif(active_at_start, 0) as churn_rate,
    1 - cast(churned_customers as double) / nullif(active_at_start, 0) as retention_rate,
    least(last_day(month_date(month_n)), run.as_of_date) = last_day(month_date(month_n)) as is_complete_month
from counted
cross join run;

-- ---------------------------------------------------------------------------------------
-- cac_monthly
-- ---------------------------------------------------------------------------------------

create or replace table {{out}}.cac_monthly as
with paid as (
    select acquisition_channel, date_trunc('month', spend_date)::date as month_start, sum(spend_amount) as spend
    from spend
    where spend_date <= (select as_of_date from run)
    group by all
),
acquired as (
    select acquisition_channel, month_date(m) as month_start, count(*) as new_customers
    from spells
    where is_new
    group by all
)
select
    coalesce(p.acquisition_channel, a.acquisition_channel) as acquisition_channel,
    coalesce(p.month_start, a.month_start) as month_start,
    cast(coalesce(p.spend, 0) as double) as spend,
    cast(coalesce(a.new_customers, 0) as bigint) as new_customers,
    cast(nullif(p.spend, 0) as double) / nullif(a.new_customers, 0) as cac
from paid as p
full join acquired as a
    on p.acquisition_channel = a.acquisition_channel and p.month_start = a.month_start;

-- ---------------------------------------------------------------------------------------
-- Cohorts: per channel, cohort and month since acquisition, every month to as_of_date
-- ---------------------------------------------------------------------------------------

create temp table cohort_cells as
with activity as (
    select
        acquisition_channel,
        cohort_m,
        cast(m - cohort_m as integer) as k,
        sum(case when is_new then 1 else 0 end) as new_customers,
        count(*) as active_customers,
        sum(purchases) as purchases,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin
    from spells
    group by all
),
grid as (
    select a.acquisition_channel, a.cohort_m, cast(g.k as integer) as k, a.new_customers as acquired_customers
    from activity as a
    cross join run
    join range(0, 1000) as g(k) on g.k <= run.as_of_m - a.cohort_m
    where a.k = 0
)
select
    g.acquisition_channel,
    g.cohort_m,
    g.k,
    g.acquired_customers,
    coalesce(a.active_customers, 0) as active_customers,
    coalesce(a.purchases, 0) as purchases,
    coalesce(a.net_revenue, 0) as net_revenue,
    coalesce(a.gross_margin, 0) as gross_margin
from grid as g
left join activity as a using (acquisition_channel, cohort_m, k);

create or replace table {{out}}.cohort_activity as
with activity as (
    select
        cohort_m,
        k,
        sum(acquired_customers) as acquired_customers,
        sum(active_customers) as active_customers,
        sum(purchases) as purchases,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin
    from cohort_cells
    group by all
)
select
    month_date(cohort_m) as cohort_month,
    k as months_since_acquisition,
    month_date(cohort_m + k) as month_start,
    cast(acquired_customers as bigint) as acquired_customers,
    cast(active_customers as bigint) as active_customers,
    cast(purchases as bigint) as purchases,
    cast(net_revenue as double) as net_revenue,
    cast(gross_margin as double) as gross_margin,
    sum(net_revenue) over (partition by cohort_m order by k)
        / nullif(cast(acquired_customers as double), 0) as cumulative_net_revenue_per_customer,
    sum(gross_margin) over (partition by cohort_m order by k)
        / nullif(cast(acquired_customers as double), 0) as cumulative_gross_margin_per_customer
from activity;

create or replace table {{out}}.ltv_cac_by_channel_month as
with cells as (
    select
        acquisition_channel,
        month_date(cohort_m) as cohort_month,
        k,
        gross_margin,
        sum(gross_margin) over (partition by acquisition_channel, cohort_m order by k)
            / nullif(cast(acquired_customers as double), 0) as cumulative_margin
    from cohort_cells
),
to_date as (
    select acquisition_channel, cohort_month, max(k) as months_observed, sum(gross_margin) as gross_margin
    from cells
    group by all
),
payback as (
    select c.acquisition_channel, c.cohort_month, min(case when c.cumulative_margin >= cac.cac then c.k end) as payback_month
    from cells as c
    join {{out}}.cac_monthly as cac
        on c.acquisition_channel = cac.acquisition_channel and c.cohort_month = cac.month_start
    where cac.cac is not null
    group by all
)
select
    cac.acquisition_channel,
    cac.month_start as cohort_month,
    cac.new_customers as acquired_customers,
    cac.spend,
    cac.cac,
    t.months_observed,
    cast(coalesce(t.gross_margin, 0) as double) as gross_margin_to_date,
    cast(coalesce(t.gross_margin, 0) as double) / nullif(cac.new_customers, 0) as margin_per_customer_to_date,
    p.payback_month
from {{out}}.cac_monthly as cac
left join to_date as t
    on cac.acquisition_channel = t.acquisition_channel and cac.month_start = t.cohort_month
left join payback as p
    on cac.acquisition_channel = p.acquisition_channel and cac.month_start = p.cohort_month;

create or replace table {{out}}.ltv_cac_by_channel as
-- cac_monthly's spend is DOUBLE: back to its exact cents before summing
with channel_cac as (
    select
        acquisition_channel,
        sum(cast(spend as decimal(18, 2))) as spend,
        sum(new_customers) as new_customers,
        cast(nullif(sum(cast(spend as decimal(18, 2))), 0) as double) / nullif(sum(new_customers), 0) as cac
    from {{out}}.cac_monthly
    group by all
),
channel_ltv as (
    select dimension_value as acquisition_channel, margin_ltv, unreliable_reason
    from {{out}}.ltv_summary
    where dimension = 'acquisition_channel'
),
channel_payback as (
    select
        acquisition_channel,
        sum(case when cac is not null then 1 else 0 end) as cohorts,
        sum(case when payback_month is not null then 1 else 0 end) as cohorts_paid_back,
        median(case when cac is not null then coalesce(payback_month, 1000000) end) as median_payback_month
    from {{out}}.ltv_cac_by_channel_month
    group by all
)
select
    c.acquisition_channel,
    cast(c.new_customers as bigint) as customers,
    cast(c.spend as double) as spend,
    c.cac,
    l.margin_ltv,
    case when 2 * p.cohorts_paid_back > p.cohorts then p.median_payback_month end as median_payback_month,
    l.margin_ltv / c.cac as ltv_to_cac,
    l.margin_ltv / c.cac >= {{ltv_cac_bar}} as is_above_ltv_cac_bar,
    case
        when l.margin_ltv / c.cac >= {{ltv_cac_bar}} then 'above_bar'
        when l.margin_ltv / c.cac < {{ltv_cac_bar}} then 'below_bar'
        else 'unknown'
    end as ltv_to_cac_status,
    case
        when c.cac is null and coalesce(c.spend, 0) = 0 then 'no marketing spend'
        when c.cac is null then 'no customers acquired'
        when l.margin_ltv is null then coalesce(l.unreliable_reason, 'no LTV for the channel')
    end as ltv_to_cac_unknown_reason,
    cast(coalesce(p.cohorts, 0) as bigint) as cohorts,
    cast(coalesce(p.cohorts_paid_back, 0) as bigint) as cohorts_paid_back,
    cast(p.cohorts_paid_back as double) / nullif(p.cohorts, 0) as share_of_cohorts_paid_back
from channel_cac as c
left join channel_ltv as l using (acquisition_channel)
left join channel_payback as p using (acquisition_channel);

-- ---------------------------------------------------------------------------------------
-- customer_segments (RFM) and the BG/NBD input summary
-- ---------------------------------------------------------------------------------------

create or replace table {{out}}.customer_segments as
with buyers as (
    select
        customer_id,
        -days_since_last_purchase as recency,
        purchases,
        net_revenue,
        is_churned,
        count(*) over () as n
    from {{out}}.customers
    where has_purchased
),
ranked as (
    select
        customer_id,
        is_churned,
        case
            when recency = max(recency) over () and min(recency) over () < max(recency) over () then 5
            else 1 + 5 * (rank() over (order by recency) - 1) // n
        end as r,
        case
            when purchases = max(purchases) over () and min(purchases) over () < max(purchases) over () then 5
            else 1 + 5 * (rank() over (order by purchases) - 1) // n
        end as f,
        case
            when net_revenue = max(net_revenue) over () and min(net_revenue) over () < max(net_revenue) over () then 5
            else 1 + 5 * (rank() over (order by net_revenue) - 1) // n
        end as m
    from buyers
),
scored as (
    select
        customer_id,
        cast(case when is_churned then 1 else r end as tinyint) as r,
        cast(f as tinyint) as f,
        cast(m as tinyint) as m,
        cast((f + m + 1) // 2 as tinyint) as fm
    from ranked
)
select
    customer_id,
    (select as_of_date from run) as as_of_date,
    r,
    f,
    m,
    fm,
    cast(r as varchar) || cast(f as varchar) || cast(m as varchar) as rfm_score,
    [
        ['Lost', 'Hibernating', 'At Risk', 'Can''t Lose Them', 'Can''t Lose Them'],
        ['Hibernating', 'About To Sleep', 'At Risk', 'At Risk', 'Can''t Lose Them'],
        ['About To Sleep', 'Need Attention', 'Need Attention', 'Loyal Customers', 'Loyal Customers'],
        ['Promising', 'Potential Loyalist', 'Loyal Customers', 'Champions', 'Champions'],
        ['New Customers', 'Potential Loyalist', 'Potential Loyalist', 'Champions', 'Champions']
    ][r][fm] as segment
from scored;

create or replace table {{out}}.int_customer_purchases_summarized as
with totals as (
    select
        p.customer_id,
        min(p.purchase_date) as first_purchase_date,
        max(p.purchase_date) as last_purchase_date,
        count(*) as purchases,
        sum(p.net_revenue) as net_revenue,
        arg_min(p.net_revenue, p.purchase_date) as first_net_revenue,
        count(*) filter (where p.purchase_date < run.holdout_start_date) as cal_purchases,
        max(p.purchase_date) filter (where p.purchase_date < run.holdout_start_date) as cal_last_date,
        sum(p.net_revenue) filter (where p.purchase_date < run.holdout_start_date) as cal_net_revenue
    from purchases as p
    cross join run
    where p.purchase_date <= run.as_of_date
    group by p.customer_id
)
select
    t.customer_id,
    t.first_purchase_date,
    t.last_purchase_date,
    t.purchases - 1 as frequency,
    date_diff('day', t.first_purchase_date, t.last_purchase_date) as recency_days,
    date_diff('day', t.first_purchase_date, run.as_of_date) as t_days,
    cast(t.net_revenue - t.first_net_revenue as double) / nullif(t.purchases - 1, 0) as monetary_value,
    t.cal_purchases > 0 as is_in_calibration,
    case when t.cal_purchases > 0 then t.cal_purchases - 1 end as calibration_frequency,
    case when t.cal_purchases > 0 then date_diff('day', t.first_purchase_date, t.cal_last_date) end
        as calibration_recency_days,
    case when t.cal_purchases > 0 then date_diff('day', t.first_purchase_date, run.holdout_start_date - 1) end
        as calibration_t_days,
    cast(t.cal_net_revenue - t.first_net_revenue as double) / nullif(t.cal_purchases - 1, 0)
        as calibration_monetary_value,
    case when t.cal_purchases > 0 then t.purchases - t.cal_purchases end as holdout_purchases
from totals as t
cross join run;
