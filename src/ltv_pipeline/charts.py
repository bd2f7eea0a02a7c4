"""Charts a marketer reads at a glance, beside the cohort charts of :mod:`analytics.cohorts`:
LTV:CAC by channel against the bar, the backtest's predicted vs actual purchases, and the RFM
segments' sizes and value. Each ``*_figure`` returns a matplotlib ``Figure`` (no pyplot, no
global state); :func:`save_png` writes one.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

#: Calibration repeat purchases at and above this are one group in the backtest chart.
BACKTEST_TOP_GROUP = 7


def save_png(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` (its folder made if absent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def _empty(axes, text: str) -> None:
    # a shop without the data yet: a chart that says so, not a broken image
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)


def _paired_bars(axes, rows: pd.DataFrame, series, fmt: str) -> np.ndarray:
    """Two horizontal bars per row, (column, legend label) each, every bar labelled with its
    value (``fmt``) or "n/a" where it is null (no bar then). Returns the rows' positions."""
    y = np.arange(len(rows))
    for index, ((column, label), offset) in enumerate(zip(series, (-0.2, 0.2), strict=True)):
        values = rows[column].astype("float64").to_numpy()
        axes.barh(
            y + offset, np.nan_to_num(values, nan=0.0), height=0.38, color=f"C{index}", label=label
        )
        for position, value in zip(y + offset, values, strict=True):
            known = not np.isnan(value)
            text = fmt.format(value) if known else "n/a"
            axes.text(value if known else 0, position, f" {text}", va="center", fontsize=8)
    return y


def ltv_to_cac_figure(channels: pd.DataFrame, bar: float = 3.0) -> Figure:
    """LTV:CAC per channel (margin LTV / CAC) beside (margin so far + predicted 12-month CLV)
    : CAC, with the bar as a dashed line; a channel whose ratio is unknown (no spend, or no
    reliable LTV) says "n/a" rather than showing a zero.

    ``channels``: ``acquisition_channel``, ``ltv_to_cac``, ``predicted_value_to_cac``.
    """
    rows = channels.sort_values("acquisition_channel", ignore_index=True)
    figure = Figure(figsize=(8, max(3.0, 0.6 * len(rows) + 1.5)))
    axes = figure.add_subplot()
    y = _paired_bars(
        axes,
        rows,
        (
            ("ltv_to_cac", "LTV:CAC (margin LTV / CAC)"),
            ("predicted_value_to_cac", "(margin so far + predicted CLV) : CAC"),
        ),
        "{:.2f}x",
    )
    axes.axvline(bar, color="black", linestyle="--", linewidth=1, label=f"the {bar:g}x bar")
    axes.set_yticks(y, rows["acquisition_channel"])
    axes.invert_yaxis()
    axes.set_xlabel("value per customer / CAC")
    axes.set_title("LTV:CAC by acquisition channel")
    if rows.empty:
        _empty(axes, "no channels yet")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def backtest_groups(
    per_customer: pd.DataFrame, top_group: int = BACKTEST_TOP_GROUP
) -> pd.DataFrame:
    """Mean holdout purchases per customer, actual and forecast, by repeat purchases in the
    calibration period (``top_group`` and more are one group): lifetimes' calibration vs
    holdout view.

    ``per_customer``: ``calibration_frequency``, ``holdout_purchases``,
    ``predicted_purchases``, ``baseline_purchases``, and optionally ``customers``, how many
    customers a row stands for (:attr:`backtest.Backtest.scored`). Returns one row per group:
    ``group`` (0, 1, ..., ``top_group``), ``customers``, ``actual``, ``bgnbd``, ``naive``.
    """
    weights = (
        per_customer["customers"].astype("float64")
        if "customers" in per_customer.columns
        else pd.Series(1.0, index=per_customer.index)
    )
    columns = {"actual": "holdout_purchases", "bgnbd": "predicted_purchases"}
    columns["naive"] = "baseline_purchases"
    frame = pd.DataFrame(
        {
            "group": per_customer["calibration_frequency"].astype("int64").clip(upper=top_group),
            "customers": weights,
            **{name: per_customer[c].astype("float64") * weights for name, c in columns.items()},
        }
    )
    sums = frame.groupby("group").sum()
    out = pd.DataFrame({"customers": sums["customers"].astype("int64")})
    for name in columns:
        out[name] = sums[name] / sums["customers"]
    return out.reset_index()


def backtest_figure(groups: pd.DataFrame, holdout_days: float) -> Figure:
    """:func:`backtest_groups` as lines: what customers bought in the holdout, and what
    BG/NBD and the naive forecast (each customer's rate so far) said they would."""
    figure = Figure(figsize=(8, 5))
    axes = figure.add_subplot()
    labels = [
        f"{g}+" if i == len(groups) - 1 and g == BACKTEST_TOP_GROUP else str(g)
        for i, g in enumerate(groups["group"])
    ]
    x = np.arange(len(groups))
    axes.plot(x, groups["actual"], marker="o", color="black", label="actual")
    axes.plot(x, groups["bgnbd"], marker="s", color="C0", label="BG/NBD forecast")
    axes.plot(x, groups["naive"], marker="^", color="C1", linestyle=":", label="naive forecast")
    axes.set_xticks(x, labels)
    axes.set_xlabel("repeat purchases before the holdout")
    axes.set_ylabel(f"purchases per customer in the {holdout_days:.0f}-day holdout")
    axes.set_title("Backtest: forecast vs what customers bought")
    if groups.empty:
        _empty(axes, "not scored (the model is not fitted)")
    else:
        axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def segments_figure(summary: pd.DataFrame) -> Figure:
    """Each RFM segment's share of customers beside its share of revenue, largest revenue
    first: where the value sits, and how many customers hold it.

    ``summary``: ``segment``, ``share_of_customers``, ``share_of_revenue``.
    """
    rows = summary.sort_values(["share_of_revenue", "segment"], ascending=[False, True])
    figure = Figure(figsize=(8, max(3.0, 0.45 * len(rows) + 1.5)))
    axes = figure.add_subplot()
    y = _paired_bars(
        axes,
        rows,
        (
            ("share_of_customers", "share of customers"),
            ("share_of_revenue", "share of net revenue"),
        ),
        "{:.1%}",
    )
    axes.set_yticks(y, rows["segment"])
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1))
    axes.set_title("RFM segments: share of customers and of net revenue")
    if rows.empty:
        _empty(axes, "no customer has a purchase yet")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure
