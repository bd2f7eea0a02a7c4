"""RFM scores and named segments.

Each of recency, frequency and monetary value is scored 1-5 among customers with a purchase
as of the as-of date, 5 being best (most recent, most purchases, most revenue).

Scores under ties
-----------------
A customer's score is ``1 + floor(5 * L / n)``, where ``L`` is the number of customers with a
strictly lower value and ``n`` the number of customers; the customers holding the highest
value score 5. So:

* ties share a score (customers with the same value have the same ``L``), a higher value never
  scores lower, and with distinct values each score holds a fifth of the customers (to
  within one);
* a tied block gets the lowest score its rank range touches: a customer is credited only with
  the customers they beat, not with those they tie. The minimum value always scores 1, so
  one-time buyers are F=1 however many they are. The former rule, the fifth of the block's
  average rank, gave the bottom 51% of a real shop (its one-time buyers) F=2, and no customer
  could reach the FM=1 cells ("Lost", "New Customers", "Promising");
* the exception, the block of the highest value, gets the highest score it touches, 5, so
  the best customers are never marked down because many of them tie (the most recent day in
  a small shop, the top frequency when few buy more than twice). Both ends are pinned as
  soon as there are two distinct values; one distinct value scores 1 (everybody is also the
  minimum). Any pick among the scores a block touches keeps the order, since a block's
  highest touched score is at most the next block's lowest.

The price is fifths of unequal size: with half the buyers bought once, F=1 holds 50% and F=2
is empty.

Recency has an absolute floor
-----------------------------
Quintiles are relative: on a shop where 80% of buyers have lapsed, the four lower fifths are
all lapsed customers, and ranking alone calls a buyer silent for 300 days "Promising" (R=4,
FM=1) or "Champions" (R=4, FM=4-5), while "Lost" (R=1, FM=1) holds at most a fifth. So a
customer churned by the pipeline's own definition (``is_churned`` of marts.customers: last
purchase more than ``churn_inactivity_days`` before the as-of date, the definition of
churn_monthly too) scores R=1 whatever their rank. Where at most a fifth of buyers lapsed
this changes nothing (they are the bottom fifth already); with more, R=1 is exactly the
churned and R=2-5 keep the active customers' quintile scores among all buyers, so the lower
of them may be empty (80% lapsed: R is 1 or 5). A floor alone, not a second ranking of the
active customers, keeps R the usual quintile score on a healthy shop.

The segment depends on R and on FM = (F + M) / 2 rounded half up (3.5 -> 4, 2.5 -> 3; not
Python's ``round``, which rounds halves to even), through :data:`SEGMENT_GRID`, the only
place the map is written (the README shows it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENTS: tuple[str, ...] = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalist",
    "New Customers",
    "Promising",
    "Need Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
)

#: R score -> segment for FM = 1, 2, 3, 4, 5.
SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New Customers", "Potential Loyalist", "Potential Loyalist", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalist", "Loyal Customers", "Champions", "Champions"),
    3: ("About To Sleep", "Need Attention", "Need Attention", "Loyal Customers", "Loyal Customers"),
    2: ("Hibernating", "About To Sleep", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Hibernating", "At Risk", "Can't Lose Them", "Can't Lose Them"),
}

SEGMENT_COLUMNS = ["customer_id", "r", "f", "m", "fm", "rfm_score", "segment"]

#: SEGMENT_GRID flattened: the segment of R and FM at (R - 1) * 5 + FM - 1.
_GRID_CELLS = np.array([SEGMENT_GRID[r][fm] for r in range(1, 6) for fm in range(5)], dtype=object)
#: "111" .. "555": the RFM score text of R, F and M at (R - 1) * 25 + (F - 1) * 5 + M - 1.
_SCORE_TEXTS = np.array(
    [f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)], dtype=object
)


def quintile_scores(values: pd.Series) -> pd.Series:
    """Scores 1-5 by fifth of ``values`` (higher value, higher score); ties share a score.

    A score is ``1 + floor(5 * L / n)``, ``L`` the count of strictly lower values, and 5 for
    the highest value (see the module docstring for why): the minimum scores 1 and, when
    there are two distinct values or more, the maximum scores 5.

    Parameters
    ----------
    values
        One value per customer, no nulls.

    Returns
    -------
    pandas.Series
        int8 scores aligned with ``values``.
    """
    below, top = _ranks(values)
    return pd.Series(scores_from_ranks(below, len(values), top), index=values.index)


def _ranks(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """:func:`scores_from_ranks`' ``below`` and ``top`` of ``values``, in memory."""
    if values.isna().any():
        raise ValueError("cannot score null values")
    array = values.to_numpy()
    if not len(array):
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype=bool)
    # rank "min" - 1 = customers strictly below; integer arithmetic, no float edge at a fifth
    below = values.rank(method="min").to_numpy().astype("int64") - 1
    return below, (array == array.max()) & (array.min() < array.max())


def scores_from_ranks(below: np.ndarray, n: int, top: np.ndarray) -> np.ndarray:
    """The quintile score of each customer from their rank among ``n`` buyers.

    Parameters
    ----------
    below
        Per customer, how many of the ``n`` hold a strictly lower value (SQL's
        ``rank() - 1``).
    n
        How many customers are scored together (all buyers, not a batch).
    top
        Per customer, whether they hold the highest value while some other customer holds a
        lower one: these score 5.

    Returns
    -------
    numpy.ndarray
        int8 scores, ``1 + floor(5 * below / n)`` or 5.
    """
    below = np.asarray(below, dtype="int64")
    if len(below) and (below.min() < 0 or below.max() >= n):
        raise ValueError(f"ranks must lie in [0, {n}), got {below.min()}..{below.max()}")
    scores = 1 + (5 * below) // max(n, 1)
    scores[np.asarray(top, dtype=bool)] = 5
    return scores.astype("int8")


def fm_scores(f: pd.Series, m: pd.Series) -> pd.Series:
    """FM = (F + M) / 2 rounded half up, as int8.

    Half up (1.5 -> 2, 4.5 -> 5), the school rounding the README's "round((F + M) / 2)"
    means, rather than to even as Python's ``round`` does: to even, F + M = 5 and 9 would
    round down and F + M = 3 and 7 up, an arbitrary zigzag.
    """
    return ((f.astype(int) + m.astype(int) + 1) // 2).astype("int8")


#: The measure each score ranks, as :func:`measure_ranks_sql` names it.
MEASURES = {"r": "recency", "f": "frequency", "m": "monetary"}
#: Each measure from a row of the customers mart: recency is minus the days since the last
#: purchase (more recent, higher), frequency the purchase days, monetary the net revenue as a
#: double. Written once, for the ranks and for the join that looks a buyer's value up.
MEASURE_SQL = {
    "recency": "-days_since_last_purchase",
    "frequency": "purchases",
    "monetary": "cast(net_revenue as double)",
}


def _buyers_sql(customers: str) -> str:
    measures = ", ".join(f"{sql} as {name}" for name, sql in MEASURE_SQL.items())
    return f"select customer_id, is_churned, {measures} from {customers} where has_purchased"


def measure_ranks_sql(customers: str, score: str) -> str:
    """SQL: per distinct value of one measure among the buyers of the ``customers`` mart, the
    ``value``, ``below`` and ``top`` that :func:`score_values` reads.

    ``below`` and ``top`` are :func:`quintile_scores`' ``L`` and top block, over all buyers:
    the warehouse counts the buyers of each distinct value and ranks the values, a running sum
    over a few thousand rows (a few million for revenue at 100M orders) instead of a sort of
    every buyer. ``score`` is ``r``, ``f`` or ``m`` (:data:`MEASURES`). A null measure is a
    value of its own, which :func:`score_values` refuses. Runs on DuckDB and Spark.
    """
    return f"""
    with buyers as ({_buyers_sql(customers)}),

    counted as (
        select {MEASURES[score]} as value, count(*) as buyers
        from buyers
        group by {MEASURES[score]}
    )

    select
        value,
        cast(sum(buyers) over (order by value) - buyers as bigint) as below,
        (value = max(value) over () and min(value) over () < max(value) over ()) as top
    from counted
    """


def score_values(ranks: pd.DataFrame, n: int) -> pd.DataFrame:
    """The score of each distinct value of a measure (a result of :func:`measure_ranks_sql`).

    Parameters
    ----------
    ranks
        ``value``, ``below`` and ``top`` per distinct value.
    n
        How many buyers the ranks were taken among.

    Returns
    -------
    pandas.DataFrame
        ``value`` and its int8 ``score`` (:func:`scores_from_ranks`).

    Raises
    ------
    ValueError
        On a null value (a buyer without recency, purchases or revenue).
    """
    if ranks["value"].isna().any():
        # the warehouse sorts a null first or last depending on the engine
        raise ValueError("cannot score null values (a buyer without recency, purchases or revenue)")
    return pd.DataFrame(
        {
            "value": ranks["value"].to_numpy(),
            "score": scores_from_ranks(ranks["below"].to_numpy(), n, ranks["top"]),
        }
    )


def _segment_columns(
    r: np.ndarray, f: np.ndarray, m: np.ndarray, churned: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The published r (1 when churned: the recency floor), f, m, fm, rfm_score and segment of
    quintile scores ``r``, ``f`` and ``m`` (int8 arrays)."""
    if churned is not None:
        r = np.where(churned, np.int8(1), r).astype("int8")
    fm = fm_scores(pd.Series(f), pd.Series(m)).to_numpy()
    # the 125 score texts and 25 segment cells are looked up, not built per customer (3M
    # buyers: 0.2 s instead of 1 s)
    cell = (r.astype("int64") - 1) * 5 + (fm - 1)
    digits = (r.astype("int64") - 1) * 25 + (f.astype("int64") - 1) * 5 + (m - 1)
    return {
        "r": r,
        "f": f,
        "m": m,
        "fm": fm,
        "rfm_score": pd.array(_SCORE_TEXTS[digits], dtype="str"),
        "segment": pd.array(_GRID_CELLS[cell], dtype="str"),
    }


def segment_cells() -> pd.DataFrame:
    """Every combination of quintile scores and churn flag, with what a buyer holding it gets.

    Returns
    -------
    pandas.DataFrame
        250 rows: the keys ``r_score``, ``f``, ``m`` (the quintile scores, int8) and
        ``is_churned``, and the published ``r`` (1 when churned), ``fm``, ``rfm_score`` and
        ``segment``, the same as :func:`score_ranked` gives a buyer with those scores.
    """
    grid = np.array(
        [
            (r, f, m, churned)
            for r in range(1, 6)
            for f in range(1, 6)
            for m in range(1, 6)
            for churned in (False, True)
        ]
    )
    r, f, m = (grid[:, i].astype("int8") for i in range(3))
    churned = grid[:, 3].astype(bool)
    columns = _segment_columns(r, f, m, churned)
    return pd.DataFrame(
        {"r_score": r, "is_churned": churned, **{k: columns[k] for k in SEGMENT_COLUMNS[1:]}}
    )


def segments_sql(customers: str, scores: dict[str, str], cells: str) -> str:
    """SQL: :data:`SEGMENT_COLUMNS` per purchasing customer of the ``customers`` mart.

    Each buyer's measures are looked up in the tables of ``scores`` (``r``, ``f``, ``m`` ->
    a table of ``value`` and ``score``, :func:`score_values`) and the scores in ``cells``
    (:func:`segment_cells`): the warehouse joins, Python scores only the distinct values and
    the 250 cells, so no per-buyer frame passes through Python (30M buyers at 100M orders).
    A buyer whose value or churn flag finds no row (a null) is left out, which the blocking
    check ``every_buyer_has_one_segment`` reports. Runs on DuckDB and Spark.

    A buyer finds its cell by one number made of its three scores and churn flag. Joined
    column by column, the cells linked the three score tables to each other, and DuckDB
    joined those first, before any buyer: every cell with every value of each score, which at
    100M orders (1.6M revenues) filled 40 GB of disk. One key of all four makes the cells
    joinable only once a buyer has every score.
    """
    lookups = " ".join(
        f"inner join {scores[s]} as {s} on {s}.value = buyers.{m}" for s, m in MEASURES.items()
    )
    buyer_cell = _cell_key("r.score", "f.score", "m.score", "buyers.is_churned")
    cell = _cell_key("cells.r_score", "cells.f", "cells.m", "cells.is_churned")
    return f"""
    with buyers as ({_buyers_sql(customers)})

    select buyers.customer_id, {", ".join(f"cells.{c}" for c in SEGMENT_COLUMNS[1:])}
    from buyers
    {lookups}
    inner join {cells} as cells on {cell} = {buyer_cell}
    """


def _cell_key(r: str, f: str, m: str, churned: str) -> str:
    """SQL: one integer per (R, F, M, churn flag) cell; a null anywhere gives null."""
    return (
        f"(cast({r} as int) * 100 + cast({f} as int) * 10 + cast({m} as int) "
        f"+ case when {churned} then 1000 when not {churned} then 0 end)"
    )


def score_ranked(ranked: pd.DataFrame, n: int) -> pd.DataFrame:
    """RFM scores and segments of customers whose ranks among ``n`` buyers are known.

    Parameters
    ----------
    ranked
        ``customer_id``, ``r_below``, ``r_top``, ``f_below``, ``f_top``, ``m_below``,
        ``m_top`` (:func:`scores_from_ranks`) and optionally ``is_churned``; any subset of
        the buyers.
    n
        How many buyers the ranks were taken among.

    Returns
    -------
    pandas.DataFrame
        :data:`SEGMENT_COLUMNS`, in the order of ``ranked``.
    """
    ranks = [f"{score}_{part}" for score in MEASURES for part in ("below", "top")]
    if ranked[ranks].isna().any().any():
        # a null measure: the warehouse sorts it first or last depending on the engine
        raise ValueError("cannot score null values (a buyer without recency, purchases or revenue)")
    scores = {
        score: scores_from_ranks(ranked[f"{score}_below"].to_numpy(), n, ranked[f"{score}_top"])
        for score in MEASURES
    }
    churned = None
    if "is_churned" in ranked.columns:
        if ranked["is_churned"].isna().any():
            raise ValueError("is_churned has nulls")
        churned = ranked["is_churned"].to_numpy(dtype=bool)
    columns = _segment_columns(scores["r"], scores["f"], scores["m"], churned)
    return pd.DataFrame({"customer_id": ranked["customer_id"].to_numpy(), **columns})


def segment_for(r: int, fm: int) -> str:
    """The named segment of an R score and an FM score (both 1-5)."""
    if not (1 <= r <= 5 and 1 <= fm <= 5):
        raise ValueError(f"scores must be 1-5, got r={r}, fm={fm}")
    return SEGMENT_GRID[r][fm - 1]


def score_customers(customers: pd.DataFrame) -> pd.DataFrame:
    """RFM scores and segment per purchasing customer.

    Parameters
    ----------
    customers
        One row per customer with a purchase: ``customer_id``, ``days_since_last_purchase``,
        ``purchases`` (calendar days with a completed order, as marts.customers counts
        them) and ``net_revenue``; optionally ``is_churned`` (bool, the mart's churn flag),
        whose customers score R=1 (the recency floor of the module docstring). Without it
        R is purely relative, which only suits a shop where few buyers lapsed.

    Returns
    -------
    pandas.DataFrame
        :data:`SEGMENT_COLUMNS`, one row per input customer, sorted by customer_id.

    Raises
    ------
    ValueError
        On missing columns, duplicate customers, nulls, or customers without a purchase.
    """
    needed = {"customer_id", "days_since_last_purchase", "purchases", "net_revenue"}
    missing = needed - set(customers.columns)
    if missing:
        raise ValueError(f"customers lacks column(s): {sorted(missing)}")
    if customers["customer_id"].duplicated().any():
        raise ValueError("customer_id must be unique")
    if (customers["purchases"] < 1).any():
        raise ValueError("RFM scores only customers with at least one purchase")
    frame = customers.sort_values("customer_id").reset_index(drop=True)
    ranked = pd.DataFrame({"customer_id": frame["customer_id"]})
    values = {
        "r": -frame["days_since_last_purchase"].astype("float64"),
        "f": frame["purchases"].astype("float64"),
        "m": frame["net_revenue"].astype("float64"),
    }
    for score, value in values.items():
        ranked[f"{score}_below"], ranked[f"{score}_top"] = _ranks(value)
    if "is_churned" in frame.columns:
        ranked["is_churned"] = frame["is_churned"]
    return score_ranked(ranked, len(frame))


#: What :func:`segment_totals_sql` sums doubles as: exact, so the sum is the same in any order.
EXACT_SUM_TYPE = "decimal(38, 9)"


def segment_totals_sql(segments: str, customers: str, predictions: str | None = None) -> str:
    """SQL: per segment of the ``segments`` table, the sums :func:`segment_summary` reads.

    Each customer's row of ``customers`` (``net_revenue``, ``historical_ltv``) and of
    ``predictions`` (``predicted_clv``) is joined on ``customer_id``; the warehouse adds them
    up, so no per-customer table reaches Python (42M customers at 100M orders).
    ``segment_rows``, the segment's rows of ``segments`` before the joins, lets
    :func:`segment_summary` refuse a customer joined twice (a customer on two rows of
    ``customers`` or ``predictions``). A customer on two rows of ``segments`` is the blocking
    check ``every_buyer_has_one_segment``'s to catch, which runs first: counting distinct
    customers here instead took 0.3 s of the 0.8 s query at 10M orders.
    Without ``predictions`` the predicted sums are null. Runs on DuckDB and Spark.

    The doubles are summed as decimals (to 1e-9 of the currency), exactly, then cast back: a
    sum of doubles depends on the order the engine's threads meet the rows in, so the same
    customers stored in another physical order (a night's delete and append against a fresh
    load's single insert) gave summaries differing in the last bits.
    """
    predicted = (
        f"cast(p.predicted_clv as {EXACT_SUM_TYPE})" if predictions else "cast(null as double)"
    )
    join = f"left join {predictions} as p on p.customer_id = s.customer_id" if predictions else ""
    return f"""
    with joined as (
        select
            s.segment,
            count(*) as customers,
            cast(sum(cast(c.net_revenue as {EXACT_SUM_TYPE})) as double) as net_revenue,
            cast(sum(cast(c.historical_ltv as {EXACT_SUM_TYPE})) as double)
                as historical_ltv_sum,
            count(c.historical_ltv) as historical_ltv_count,
            cast(sum({predicted}) as double) as predicted_clv_sum,
            count({predicted}) as predicted_clv_count
        from {segments} as s
        left join {customers} as c on c.customer_id = s.customer_id
        {join}
        group by s.segment
    ),

    rows_per_segment as (
        select segment, count(*) as segment_rows
        from {segments}
        group by segment
    )

    select joined.*, rows_per_segment.segment_rows
    from joined
    inner join rows_per_segment on rows_per_segment.segment = joined.segment
    """


SUMMARY_COLUMNS = [
    "segment",
    "customers",
    "share_of_customers",
    "net_revenue",
    "share_of_revenue",
    "average_historical_ltv",
    "average_predicted_clv",
]


def segment_summary(totals: pd.DataFrame) -> pd.DataFrame:
    """Per segment: customers, shares of customers and revenue, average historical and
    predicted CLV.

    Parameters
    ----------
    totals
        One row per segment, the columns of :func:`segment_totals_sql`.

    Returns
    -------
    pandas.DataFrame
        :data:`SUMMARY_COLUMNS`, one row per segment with customers, in the order of
        :data:`SEGMENTS`. An average over no value (no prediction in the segment) is null.

    Raises
    ------
    ValueError
        On an unknown or repeated segment, or a customer counted twice in a segment (a
        customer on two rows of ``customers`` or ``predictions`` would add their revenue
        twice).
    """
    unknown = sorted(set(totals["segment"]) - set(SEGMENTS))
    if unknown:
        raise ValueError(f"unknown segment(s): {unknown}")
    if totals["segment"].duplicated().any():
        raise ValueError("each segment must have one row of totals")
    twice = totals["customers"] != totals["segment_rows"]
    if twice.any():
        raise ValueError(
            "a customer is counted twice in segment(s) "
            f"{sorted(totals.loc[twice, 'segment'])}: customer_id must be unique in every input"
        )
    order = {name: i for i, name in enumerate(SEGMENTS)}
    out = totals.sort_values("segment", key=lambda s: s.map(order)).reset_index(drop=True)
    out["customers"] = out["customers"].astype("int64")
    out["net_revenue"] = out["net_revenue"].astype("float64").fillna(0.0)

    def mean(total: str, count: str) -> pd.Series:
        counts = out[count].astype("float64")
        return (out[total].astype("float64") / counts).where(counts > 0)

    out["average_historical_ltv"] = mean("historical_ltv_sum", "historical_ltv_count")
    out["average_predicted_clv"] = mean("predicted_clv_sum", "predicted_clv_count")
    out["share_of_customers"] = out["customers"] / out["customers"].sum()
    total = out["net_revenue"].sum()
    out["share_of_revenue"] = out["net_revenue"] / total if total > 0 else 0.0
    return out[SUMMARY_COLUMNS]
