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
    if values.isna().any():
        raise ValueError("cannot score null values")
    if values.empty:
        return pd.Series([], dtype="int8", index=values.index)
    n = len(values)
    # rank "min" - 1 = customers strictly below; integer arithmetic, no float edge at a fifth
    below = values.rank(method="min").to_numpy().astype("int64") - 1
    scores = 1 + (5 * below) // n
    top = values.to_numpy() == values.max()
    if not top.all():
        scores[top] = 5
    return pd.Series(scores.astype("int8"), index=values.index)


def fm_scores(f: pd.Series, m: pd.Series) -> pd.Series:
    """FM = (F + M) / 2 rounded half up, as int8.

    Half up (1.5 -> 2, 4.5 -> 5), the school rounding the README's "round((F + M) / 2)"
    means, rather than to even as Python's ``round`` does: to even, F + M = 5 and 9 would
    round down and F + M = 3 and 7 up, an arbitrary zigzag.
    """
    return ((f.astype(int) + m.astype(int) + 1) // 2).astype("int8")


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
    r = quintile_scores(-frame["days_since_last_purchase"].astype("float64"))
    if "is_churned" in frame.columns:
        if frame["is_churned"].isna().any():
            raise ValueError("is_churned has nulls")
        r = r.mask(frame["is_churned"].astype(bool), np.int8(1))
    f = quintile_scores(frame["purchases"].astype("float64"))
    m = quintile_scores(frame["net_revenue"].astype("float64"))
    fm = fm_scores(f, m)
    # the 125 score texts and 25 segment cells are looked up, not built per customer (3M
    # buyers: 0.2 s instead of 1 s)
    cell = (r.to_numpy().astype("int64") - 1) * 5 + (fm.to_numpy() - 1)
    digits = (r.to_numpy().astype("int64") - 1) * 25 + (f.to_numpy() - 1) * 5 + (m.to_numpy() - 1)
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "r": r,
            "f": f,
            "m": m,
            "fm": fm,
            "rfm_score": pd.array(_SCORE_TEXTS[digits], dtype="str"),
            "segment": pd.array(_GRID_CELLS[cell], dtype="str"),
        }
    )


def segment_summary(
    segments: pd.DataFrame, customers: pd.DataFrame, predictions: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per segment: customers, shares of customers and revenue, average historical and
    predicted CLV.

    Parameters
    ----------
    segments
        Output of :func:`score_customers`.
    customers
        ``customer_id``, ``net_revenue`` and ``historical_ltv`` per customer.
    predictions
        ``customer_id`` and ``predicted_clv``; omitted, the column is null.
    """
    # one row per customer on every side, checked once here: a merge's own validation
    # (validate="one_to_one") costs 1.3 s a merge at 3M buyers
    named = {"segments": segments, "customers": customers}
    if predictions is not None:
        named["predictions"] = predictions
    for name, table in named.items():
        if not table["customer_id"].is_unique:
            raise ValueError(f"{name}: customer_id must be unique")
    frame = segments[["customer_id", "segment"]].merge(
        customers[["customer_id", "net_revenue", "historical_ltv"]], on="customer_id", how="left"
    )
    if predictions is not None:
        frame = frame.merge(
            predictions[["customer_id", "predicted_clv"]], on="customer_id", how="left"
        )
    else:
        frame["predicted_clv"] = np.nan
    frame["net_revenue"] = frame["net_revenue"].astype("float64")
    out = frame.groupby("segment").agg(
        customers=("customer_id", "size"),
        net_revenue=("net_revenue", "sum"),
        average_historical_ltv=("historical_ltv", "mean"),
        average_predicted_clv=("predicted_clv", "mean"),
    )
    out = out.reindex([s for s in SEGMENTS if s in out.index]).reset_index()
    out["share_of_customers"] = out["customers"] / out["customers"].sum()
    total = out["net_revenue"].sum()
    out["share_of_revenue"] = out["net_revenue"] / total if total > 0 else 0.0
    return out[
        [
            "segment",
            "customers",
            "share_of_customers",
            "net_revenue",
            "share_of_revenue",
            "average_historical_ltv",
            "average_predicted_clv",
        ]
    ]
