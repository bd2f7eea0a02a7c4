"""Cohort retention tables and charts from the cohort marts.

Retention of a cohort in month k = its customers who purchased in month k / customers
acquired. Cumulative revenue and margin per customer come from ``marts.cohort_activity`` as
they are (defined once, in SQL); this module only reshapes and plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

LONG_COLUMNS = [
    "cohort_month",
    "months_since_acquisition",
    "acquired_customers",
    "active_customers",
    "retention",
    "cumulative_net_revenue_per_customer",
    "cumulative_gross_margin_per_customer",
]


def retention_long(cohort_activity: pd.DataFrame) -> pd.DataFrame:
    """One row per cohort and month since acquisition, with retention.

    Parameters
    ----------
    cohort_activity
        Rows of ``marts.cohort_activity``.
    """
    frame = cohort_activity.sort_values(["cohort_month", "months_since_acquisition"]).copy()
    acquired = frame["acquired_customers"].astype("float64")
    frame["retention"] = np.where(acquired > 0, frame["active_customers"] / acquired, np.nan)
    for column in ("cumulative_net_revenue_per_customer", "cumulative_gross_margin_per_customer"):
        frame[column] = frame[column].astype("float64")
    return frame[LONG_COLUMNS].reset_index(drop=True)


def retention_wide(long: pd.DataFrame) -> pd.DataFrame:
    """Cohorts as rows, ``m0``, ``m1``, ... as columns of retention: the heatmap a BI tool shows."""
    wide = long.pivot(index="cohort_month", columns="months_since_acquisition", values="retention")
    wide.columns = [f"m{int(k)}" for k in wide.columns]
    sizes = long.groupby("cohort_month")["acquired_customers"].first()
    return wide.reset_index().merge(sizes.reset_index(), on="cohort_month")[
        ["cohort_month", "acquired_customers", *wide.columns]
    ]


def channel_ltv_curves(channel_cohort_months: pd.DataFrame) -> pd.DataFrame:
    """Cumulative gross margin per acquired customer by month since acquisition, per channel.

    Chains the month-by-month margin of the cohorts that reached each month: month k adds the
    margin earned in month k by every cohort whose month k is complete, over those cohorts'
    acquired customers. Averaging the cumulative values instead lets the curve fall at its
    right end, where only the oldest cohorts remain and carry their own level; chained
    increments never decrease while margins are not negative, and young cohorts never pull
    late months down.

    Parameters
    ----------
    channel_cohort_months
        Rows of ``int_cohort_months_aggregated``: acquisition_channel, cohort_month,
        months_since_acquisition, acquired_customers, gross_margin and (when present)
        is_complete_month, which keeps the as-of month's partial figures out.
    """
    frame = channel_cohort_months
    if "is_complete_month" in frame.columns:
        frame = frame[frame["is_complete_month"].astype(bool)]
    frame = frame.assign(gross_margin=frame["gross_margin"].astype("float64"))
    curves = (
        frame.groupby(["acquisition_channel", "months_since_acquisition"])
        .agg(
            cohorts=("cohort_month", "nunique"),
            acquired_customers=("acquired_customers", "sum"),
            gross_margin=("gross_margin", "sum"),
        )
        .reset_index()
        .sort_values(["acquisition_channel", "months_since_acquisition"])
    )
    increment = curves["gross_margin"] / curves["acquired_customers"].replace(0, np.nan)
    curves["cumulative_gross_margin_per_customer"] = increment.groupby(
        curves["acquisition_channel"]
    ).cumsum()
    return curves[
        [
            "acquisition_channel",
            "months_since_acquisition",
            "cohorts",
            "acquired_customers",
            "cumulative_gross_margin_per_customer",
        ]
    ].reset_index(drop=True)


def plot_retention_heatmap(long: pd.DataFrame, path: Path) -> Path:
    """Write a PNG heatmap of retention, cohorts down, months since acquisition across."""
    wide = long.pivot(index="cohort_month", columns="months_since_acquisition", values="retention")
    figure = Figure(figsize=(max(6, 0.4 * wide.shape[1] + 2), max(4, 0.3 * wide.shape[0] + 1.5)))
    axes = figure.add_subplot()
    image = axes.imshow(wide.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    axes.set_xlabel("months since acquisition")
    axes.set_ylabel("cohort (month of first purchase)")
    axes.set_yticks(range(len(wide.index)), [str(month)[:7] for month in wide.index], fontsize=7)
    axes.set_title("Share of each cohort purchasing, by month since acquisition")
    figure.colorbar(image, ax=axes, label="retention")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def plot_ltv_curves(curves: pd.DataFrame, path: Path, cac: dict[str, float] | None = None) -> Path:
    """Write a PNG of cumulative margin per acquired customer by channel, with CAC lines."""
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    for index, (channel, rows) in enumerate(curves.groupby("acquisition_channel")):
        color = f"C{index % 10}"
        axes.plot(
            rows["months_since_acquisition"],
            rows["cumulative_gross_margin_per_customer"],
            label=channel,
            color=color,
        )
        if cac and cac.get(channel):
            axes.axhline(cac[channel], color=color, linestyle=":", linewidth=1)
    axes.set_xlabel("months since acquisition")
    axes.set_ylabel("cumulative gross margin per acquired customer")
    axes.set_title("LTV curves by acquisition channel (dotted: CAC)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
