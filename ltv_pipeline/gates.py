"""The verdict on a night's CLV backtest: ok, less accurate than the bars, or broken (pure).

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
