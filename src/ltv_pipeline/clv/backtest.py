"""The CLV backtest: fit before a holdout, score the holdout against the naive forecast, and
the verdict on it: ok, less accurate than the bars, or broken (pure).

A model that is merely less accurate than a fixed bar still describes the shop better than
nothing, and withholding every mart for it (a real shop's backfills scored 10.4% and -13.4%
against a ±10% bar) costs more than it protects. So accuracy bars only *report*; the run is
stopped only for what means the fit itself is broken: output that is not a number, a forecast
far worse than the naive one, or a collapse against the shop's own recent nights.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ltv_pipeline.clv.bgnbd import expected_purchases
from ltv_pipeline.clv.forecast import (
    MIN_REPEAT_CUSTOMERS,
    CustomerModels,
    ModelNotFitted,
    fit_grouped,
    group_for_fit,
    model_arrays,
)

OK = "ok"
LESS_ACCURATE = "less_accurate"
BROKEN = "broken"
VerdictName = Literal["ok", "less_accurate", "broken"]


@dataclass(frozen=True)
class Scores:
    """The holdout scores of BG/NBD and of the naive forecast (``forecast.Score`` fields)."""

    aggregate_error_pct: float
    mae: float
    spearman: float
    predicted_total: float
    baseline_mae: float


@dataclass(frozen=True)
class Gates:
    """Bars (reported when missed) and limits (the fit is broken beyond them).

    Parameters
    ----------
    max_aggregate_error_pct, min_spearman
        Accuracy bars: a model beyond them is ``less_accurate``; exactly at a bar is ``ok``.
        A model whose MAE does not beat the naive forecast's is ``less_accurate`` too.
    max_mae_vs_naive
        Broken when the model's MAE is more than this many times the naive forecast's.
    max_mae_vs_recent
        Broken when the MAE is more than this many times the median MAE of the recent nights.
    recent_nights, min_recent_nights
        How many recent nights the median takes, and how many it needs before it judges
        (fewer: the collapse test is skipped, so a new shop is not judged on one night).
    """

    max_aggregate_error_pct: float = 10.0
    min_spearman: float = 0.3
    max_mae_vs_naive: float = 1.5
    max_mae_vs_recent: float = 2.0
    recent_nights: int = 7
    min_recent_nights: int = 3


@dataclass(frozen=True)
class Verdict:
    """What the backtest says about the fit, and whether that stops publishing.

    ``blocks`` is true only for a broken fit, and in a backfill only for non-finite output:
    a backfill never fails on accuracy alone (its recent nights are other dates' scores, and
    an old date may simply be harder to forecast).
    """

    verdict: VerdictName
    reasons: tuple[str, ...]
    blocks: bool

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def judge(
    scores: Scores,
    gates: Gates = Gates(),
    recent_mae: Sequence[float] = (),
    *,
    backfill: bool = False,
) -> Verdict:
    """The verdict on one backtest.

    Parameters
    ----------
    scores
        Tonight's scores.
    gates
        Bars and limits.
    recent_mae
        MAE of earlier nightly runs, newest first (comparable ones: same holdout length);
        the first ``gates.recent_nights`` finite values count.
    backfill
        The run rebuilds a past ``as_of_date``: a broken verdict on accuracy does not block.

    Returns
    -------
    Verdict
        The worst verdict that applies, with every reason (broken ones first).
    """
    broken: list[str] = []
    if not (_finite(scores.mae) and _finite(scores.predicted_total)):
        broken.append(f"non-finite forecast (MAE {scores.mae}, total {scores.predicted_total})")
        return Verdict(BROKEN, tuple(broken), blocks=True)
    less: list[str] = []
    if _finite(scores.baseline_mae) and scores.mae > gates.max_mae_vs_naive * scores.baseline_mae:
        broken.append(
            f"MAE {scores.mae:.4f} is more than {gates.max_mae_vs_naive:g}x the naive "
            f"forecast's {scores.baseline_mae:.4f}"
        )
    recent = [m for m in recent_mae if _finite(m)][: gates.recent_nights]
    if len(recent) >= gates.min_recent_nights:
        median = statistics.median(recent)
        if scores.mae > gates.max_mae_vs_recent * median:
            broken.append(
                f"MAE {scores.mae:.4f} is more than {gates.max_mae_vs_recent:g}x the median "
                f"{median:.4f} of the last {len(recent)} nights"
            )
    if not _finite(scores.aggregate_error_pct):
        less.append("aggregate error undefined (no purchases in the holdout)")
    elif abs(scores.aggregate_error_pct) > gates.max_aggregate_error_pct:
        less.append(
            f"aggregate error {scores.aggregate_error_pct:+.2f}% beyond "
            f"±{gates.max_aggregate_error_pct:g}%"
        )
    if not _finite(scores.baseline_mae):
        less.append("the naive forecast has no MAE to beat")
    elif not scores.mae < scores.baseline_mae:
        less.append(
            f"MAE {scores.mae:.4f} does not beat the naive forecast's {scores.baseline_mae:.4f}"
        )
    if not _finite(scores.spearman):
        less.append("Spearman undefined (constant actual or predicted purchases)")
    elif scores.spearman < gates.min_spearman:
        less.append(f"Spearman {scores.spearman:.3f} below {gates.min_spearman:g}")
    if broken:
        return Verdict(BROKEN, (*broken, *less), blocks=not backfill)
    if less:
        return Verdict(LESS_ACCURATE, tuple(less), blocks=False)
    return Verdict(OK, (), blocks=False)


@dataclass(frozen=True)
class Score:
    """How well per-customer predictions of a count match what happened."""

    model: str
    customers: int
    actual_total: float
    predicted_total: float
    aggregate_error_pct: float
    mae: float
    spearman: float

    def as_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


def score(
    model: str,
    actual: np.ndarray,
    predicted: np.ndarray,
    customers: np.ndarray | None = None,
) -> Score:
    """Aggregate error % (signed: predicted total over actual), MAE and Spearman's rho.

    Parameters
    ----------
    model
        The forecast's name.
    actual, predicted
        Per row, what a customer bought in the holdout and what was forecast.
    customers
        Per row, how many customers it stands for (identical histories and holdout
        purchases, so identical forecasts); each row once when omitted. The scores are those
        of every customer on a row of their own: totals and MAE weight the rows, and
        Spearman's rho is Pearson's correlation of the customers' average ranks (as
        :func:`scipy.stats.spearmanr` ranks ties), computed from the counts.
    """
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if actual.shape != predicted.shape or actual.ndim != 1 or len(actual) == 0:
        raise ValueError("actual and predicted must be non-empty 1-d arrays of one length")
    weights = np.ones(len(actual)) if customers is None else np.asarray(customers, dtype=float)
    if weights.shape != actual.shape or not (weights >= 1).all():
        raise ValueError("customers must give a count of at least 1 per row")
    n = float(weights.sum())
    actual_total = float((weights * actual).sum())
    predicted_total = float((weights * predicted).sum())
    error = (predicted_total - actual_total) / actual_total * 100 if actual_total else np.nan
    constant = np.ptp(actual) == 0 or np.ptp(predicted) == 0
    return Score(
        model=model,
        customers=int(n),
        actual_total=actual_total,
        predicted_total=predicted_total,
        aggregate_error_pct=float(error),
        mae=float((weights * np.abs(predicted - actual)).sum() / n),
        spearman=np.nan if constant else _weighted_spearman(actual, predicted, weights),
    )


def _average_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each row's rank among all customers (1-based), ties sharing their average rank."""
    distinct, block = np.unique(values, return_inverse=True)
    counts = np.bincount(block, weights=weights, minlength=len(distinct))
    before = np.cumsum(counts) - counts
    return (before + (counts + 1) / 2)[block]


def _weighted_spearman(actual: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> float:
    ranks_a = _average_ranks(actual, weights)
    ranks_p = _average_ranks(predicted, weights)
    n = weights.sum()
    da = ranks_a - (weights * ranks_a).sum() / n
    dp = ranks_p - (weights * ranks_p).sum() / n
    return float(
        (weights * da * dp).sum() / np.sqrt((weights * da**2).sum() * (weights * dp**2).sum())
    )


def historical_average(
    frequency: np.ndarray, t_days: np.ndarray, horizon_days: float
) -> np.ndarray:
    """The naive forecast: each customer's repeat-purchase rate so far, over the horizon."""
    frequency = np.asarray(frequency, dtype=float)
    t_days = np.asarray(t_days, dtype=float)
    return np.where(t_days > 0, frequency / np.where(t_days > 0, t_days, 1.0), 0.0) * horizon_days


@dataclass(frozen=True)
class Backtest:
    """A fit on the calibration period scored on the holdout, against the naive baseline."""

    models: CustomerModels
    holdout_days: float
    model_score: Score
    baseline_score: Score
    #: one row per summary row: ``calibration_frequency``, ``customers``,
    #: ``holdout_purchases``, ``predicted_purchases`` and ``baseline_purchases``
    scored: pd.DataFrame


def backtest(
    summary: pd.DataFrame,
    holdout_days: float,
    *,
    fit_inputs: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    time_unit_days: float = 7.0,
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
) -> Backtest:
    """Fit on the ``calibration_*`` summary, predict ``holdout_purchases``, score both ways.

    Only customers who had bought before the holdout are scored (the others have no
    calibration history to predict from). A ``customers`` column, if any, counts the
    customers each row stands for (the summary grouped by every column it has: the same fit
    and scores as one row per customer, :func:`forecast.fit_models` and :func:`score`).
    The fit reads ``fit_inputs``, the same customers' calibration history grouped for each
    model (:func:`forecast.fit_grouped`'s ``purchases`` and ``spend``); by default the summary
    regrouped so (:func:`forecast.group_for_fit`): the same fit from fewer rows. Raises
    :class:`ModelNotFitted` like :func:`fit_models`.
    """
    cal = summary[summary["is_in_calibration"].astype(bool)]
    if cal.empty:
        raise ModelNotFitted("no customer bought before the holdout")
    customers = cal["customers"] if "customers" in cal.columns else None
    if fit_inputs is None:
        fit_inputs = group_for_fit(
            cal["calibration_frequency"],
            cal["calibration_recency_days"],
            cal["calibration_t_days"],
            cal["calibration_monetary_value"],
            customers,
        )
    models = fit_grouped(
        *fit_inputs, time_unit_days=time_unit_days, min_repeat_customers=min_repeat_customers
    )
    x, tx, T = model_arrays(
        cal["calibration_frequency"],
        cal["calibration_recency_days"],
        cal["calibration_t_days"],
        time_unit_days,
    )
    weights = np.ones(len(cal)) if customers is None else customers.to_numpy(dtype=float)
    actual = cal["holdout_purchases"].to_numpy(dtype=float)
    predicted = expected_purchases(models.bgnbd, holdout_days / time_unit_days, x, tx, T)
    baseline = historical_average(x, cal["calibration_t_days"].to_numpy(float), holdout_days)
    scored = pd.DataFrame(
        {
            "calibration_frequency": cal["calibration_frequency"].to_numpy(),
            "customers": weights.astype("int64"),
            "holdout_purchases": actual,
            "predicted_purchases": predicted,
            "baseline_purchases": baseline,
        }
    )
    return Backtest(
        models=models,
        holdout_days=holdout_days,
        model_score=score("bgnbd", actual, predicted, weights),
        baseline_score=score("historical_average", actual, baseline, weights),
        scored=scored,
    )
