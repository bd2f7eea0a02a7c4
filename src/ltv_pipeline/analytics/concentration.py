"""Revenue concentration: how much of the revenue the best customers bring (Pareto view)."""

from __future__ import annotations

import numpy as np
import pandas as pd

DECILE_COLUMNS = [
    "decile",
    "customers",
    "net_revenue",
    "min_net_revenue",
    "max_net_revenue",
    "share_of_customers",
    "share_of_revenue",
    "cumulative_share_of_revenue",
]


def revenue_deciles(customers: pd.DataFrame, groups: int = 10) -> pd.DataFrame:
    """Rank customers by net revenue and cut them into equal-sized groups, 1 = the best.

    Parameters
    ----------
    customers
        One row per purchasing customer with ``net_revenue`` (other columns are ignored).
    groups
        Number of groups (10 gives deciles). Which of several customers with the same revenue
        falls on either side of a group boundary changes no figure of the output (their
        revenues are equal), so no customer key is needed to make it independent of row
        order.

    Returns
    -------
    pandas.DataFrame
        One row per group that has customers, with :data:`DECILE_COLUMNS`.

    Raises
    ------
    ValueError
        On a missing column, a null or negative revenue, or ``groups < 1``.
    """
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    missing = {"net_revenue"} - set(customers.columns)
    if missing:
        raise ValueError(f"customers lacks column(s): {sorted(missing)}")
    revenue = customers["net_revenue"].astype("float64")
    if revenue.isna().any() or (revenue < 0).any():
        raise ValueError("net_revenue must be non-null and non-negative")
    if customers.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in DECILE_COLUMNS})

    count = len(revenue)
    ranked = pd.DataFrame(
        {
            "net_revenue": np.sort(revenue.to_numpy())[::-1],
            "decile": np.arange(count) * groups // count + 1,
        }
    )
    total = float(ranked["net_revenue"].sum())
    out = (
        ranked.groupby("decile")
        .agg(
            customers=("net_revenue", "size"),
            net_revenue=("net_revenue", "sum"),
            min_net_revenue=("net_revenue", "min"),
            max_net_revenue=("net_revenue", "max"),
        )
        .reset_index()
    )
    out["share_of_customers"] = out["customers"] / count
    out["share_of_revenue"] = out["net_revenue"] / total if total > 0 else 0.0
    out["cumulative_share_of_revenue"] = out["share_of_revenue"].cumsum()
    return out[DECILE_COLUMNS]
