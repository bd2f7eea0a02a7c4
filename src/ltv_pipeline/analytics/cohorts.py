"""Cohort retention tables and charts from the cohort marts.

Retention of a cohort in month k = its customers who purchased in month k / customers
acquired. Cumulative revenue and margin per customer come from ``marts.cohort_activity`` as
they are (defined once, in SQL); this module only reshapes and plots.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.figure import Figure

from ltv_pipeline.charts import save_png

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
    # the types BI tools read: a date (engines hand back dates or timestamps), whole counts
    months = pd.to_datetime(frame["cohort_month"]).dt.date
    frame["cohort_month"] = pd.Series(months, index=frame.index, dtype=pd.ArrowDtype(pa.date32()))
    for column in ("acquired_customers", "active_customers"):
        frame[column] = frame[column].astype("int64")
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


def retention_heatmap_figure(long: pd.DataFrame) -> Figure:
    """Retention as a heatmap, cohorts down and months since acquisition across, each cell
    labelled with its percentage.

    Month 0 is 100% by definition (a cohort is the customers who bought that month), so it is
    shown in grey and left out of the colour scale: the scale runs from 0 to the highest
    retention of the later months, where real retention lives (often 5-35%), instead of
    from 0 to 100%, which would paint every later cell the same dark colour.
    """
    wide = long.pivot(index="cohort_month", columns="months_since_acquisition", values="retention")
    values = wide.to_numpy(dtype=float)
    months = list(wide.columns)
    later = values[:, [i for i, m in enumerate(months) if m > 0]]
    top = float(np.nanmax(later)) if later.size and np.isfinite(later).any() else 1.0
    shown = np.ma.masked_invalid(np.where(np.array(months) == 0, np.nan, values))
    figure = Figure(figsize=(max(6, 0.55 * len(months) + 2), max(4, 0.35 * len(wide.index) + 1.5)))
    axes = figure.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    if not values.size:
        # a shop without purchases yet: an empty chart that says so, not a broken image
        axes.text(0.5, 0.5, "no cohorts yet", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return figure
    image = axes.imshow(shown, aspect="auto", cmap=cmap, vmin=0, vmax=max(top, 0.01))
    for row, col in np.ndindex(values.shape):
        value = values[row, col]
        if np.isnan(value):
            continue
        light = months[col] == 0 or value > 0.6 * top
        axes.text(
            col,
            row,
            f"{value:.0%}",
            ha="center",
            va="center",
            fontsize=6,
            color="black" if light else "white",
        )
    axes.set_xlabel("months since acquisition (month 0, grey: 100% by definition)")
    axes.set_ylabel("cohort (month of first purchase)")
    axes.set_xticks(range(len(months)), [str(m) for m in months], fontsize=7)
    axes.set_yticks(range(len(wide.index)), [str(month)[:7] for month in wide.index], fontsize=7)
    axes.set_title("Share of each cohort purchasing, by month since acquisition")
    colorbar = figure.colorbar(image, ax=axes, label="retention (months 1 and later)")
    colorbar.ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1))
    figure.tight_layout()
    return figure


def plot_retention_heatmap(long: pd.DataFrame, path: Path) -> Path:
    """Write :func:`retention_heatmap_figure` as a PNG."""
    return save_png(retention_heatmap_figure(long), path)


def ltv_curves_figure(
    curves: pd.DataFrame, cac: dict[str, float] | None = None, currency: str = "USD"
) -> Figure:
    """Cumulative gross margin per acquired customer by channel, each channel's CAC a dotted
    line of its colour, named in the legend with its value: where a curve crosses its line,
    the channel has paid back."""
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    for index, (channel, rows) in enumerate(curves.groupby("acquisition_channel")):
        color = f"C{index % 10}"
        axes.plot(
            rows["months_since_acquisition"],
            rows["cumulative_gross_margin_per_customer"],
            label=f"{channel}: margin per customer",
            color=color,
        )
        if cac and cac.get(channel):
            axes.axhline(
                cac[channel],
                color=color,
                linestyle=":",
                linewidth=1.2,
                label=f"{channel}: CAC {cac[channel]:,.2f} {currency}",
            )
    axes.set_xlabel("months since acquisition")
    axes.set_ylabel(f"cumulative gross margin per acquired customer ({currency})")
    axes.set_title("LTV curves by acquisition channel against their CAC")
    if curves.empty:
        axes.text(
            0.5,
            0.5,
            "no acquired customers yet",
            ha="center",
            va="center",
            transform=axes.transAxes,
        )
    else:
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    return figure


def plot_ltv_curves(
    curves: pd.DataFrame, path: Path, cac: dict[str, float] | None = None, currency: str = "USD"
) -> Path:
    """Write :func:`ltv_curves_figure` as a PNG."""
    return save_png(ltv_curves_figure(curves, cac, currency), path)
