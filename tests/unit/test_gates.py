"""The backtest verdict (ltv_pipeline.clv.backtest) on hand-made scores, bars and recent nights."""

from __future__ import annotations

import math
from datetime import date, datetime

import pandas as pd
import pytest

from ltv_pipeline.clv import backtest as gates
from ltv_pipeline.clv.backtest import BROKEN, LESS_ACCURATE, OK, Gates, Scores, judge
from ltv_pipeline.defs.clv import recent_nightly_mae, requested_as_of_date

GOOD = Scores(
    aggregate_error_pct=3.0, mae=0.8, spearman=0.47, predicted_total=1000.0, baseline_mae=1.36
)


def scores(**changes: float) -> Scores:
    return Scores(**{**GOOD.__dict__, **changes})


def test_a_good_fit_is_ok_and_has_no_reason():
    verdict = judge(GOOD)
    assert (verdict.verdict, verdict.reason, verdict.blocks) == (OK, "", False)


@pytest.mark.parametrize("error", [10.0, -10.0])
def test_exactly_at_the_error_bar_is_ok(error):
    assert judge(scores(aggregate_error_pct=error)).verdict == OK


@pytest.mark.parametrize("error", [10.4, -13.4, 13.0])
def test_beyond_the_error_bar_is_less_accurate_and_does_not_block(error):
    """The real shop's backfills (10.4%, -13.4%): reported, not a reason to withhold marts."""
    verdict = judge(scores(aggregate_error_pct=error))
    assert verdict.verdict == LESS_ACCURATE
    assert not verdict.blocks
    assert f"aggregate error {error:+.2f}% beyond ±10%" == verdict.reason


def test_spearman_exactly_at_the_bar_is_ok_and_below_is_less_accurate():
    assert judge(scores(spearman=0.3)).verdict == OK
    verdict = judge(scores(spearman=0.2999))
    assert verdict.verdict == LESS_ACCURATE
    assert "Spearman 0.300 below 0.3" in verdict.reason


def test_not_beating_the_naive_forecast_is_less_accurate_up_to_the_limit():
    # equal MAE does not beat it
    assert judge(scores(mae=1.36)).verdict == LESS_ACCURATE
    # exactly 1.5x the naive's is still only less accurate
    at_limit = judge(scores(mae=1.5 * 1.36))
    assert at_limit.verdict == LESS_ACCURATE
    assert "does not beat the naive forecast's 1.3600" in at_limit.reason


def test_far_worse_than_the_naive_forecast_is_broken_and_blocks():
    verdict = judge(scores(mae=1.5 * 1.36 + 1e-9))
    assert verdict.verdict == BROKEN
    assert verdict.blocks
    assert verdict.reasons[0].startswith("MAE 2.0400 is more than 1.5x the naive")
    assert "does not beat" in verdict.reason  # the lesser reasons are kept too


def test_the_naive_factor_is_config():
    assert judge(scores(mae=1.8), Gates(max_mae_vs_naive=1.25)).verdict == BROKEN
    assert judge(scores(mae=1.8), Gates(max_mae_vs_naive=2.0)).verdict == LESS_ACCURATE


@pytest.mark.parametrize(
    "bad", [{"mae": math.nan}, {"mae": math.inf}, {"predicted_total": math.nan}]
)
def test_non_finite_output_is_broken_and_blocks_even_a_backfill(bad):
    verdict = judge(scores(**bad), backfill=True)
    assert verdict.verdict == BROKEN
    assert verdict.blocks
    assert "non-finite" in verdict.reason


def test_a_backfill_never_blocks_on_accuracy():
    verdict = judge(scores(mae=5.0), recent_mae=[0.8, 0.8, 0.8], backfill=True)
    assert verdict.verdict == BROKEN
    assert not verdict.blocks


def test_a_collapse_against_the_recent_nights_is_broken():
    recent = [0.80, 0.82, 0.78, 0.81]
    median = 0.805
    # exactly 2x the median is not a collapse, beyond it is
    assert judge(scores(mae=2 * median), recent_mae=recent, gates=Gates(max_mae_vs_naive=9)) == (
        judge(scores(mae=2 * median), gates=Gates(max_mae_vs_naive=9))
    )
    verdict = judge(scores(mae=1.62), recent_mae=recent, gates=Gates(max_mae_vs_naive=9))
    assert verdict.verdict == BROKEN
    assert "more than 2x the median 0.8050 of the last 4 nights" in verdict.reason
    assert verdict.blocks


def test_the_collapse_test_needs_enough_nights_and_takes_only_the_last_n():
    wide = Gates(max_mae_vs_naive=9, min_recent_nights=3, recent_nights=3)
    # two nights are too few to judge by
    assert judge(scores(mae=1.0), wide, recent_mae=[0.1, 0.1]).verdict != BROKEN
    # the newest three count (median 0.6): 1.0 is within 2x; an old night of 0.1 does not count
    assert judge(scores(mae=1.0), wide, recent_mae=[0.5, 0.6, 0.7, 0.1, 0.1]).verdict != BROKEN
    # non-finite nights are skipped, not counted
    nan_nights = [math.nan, 0.1, math.nan, 0.1, 0.1]
    assert judge(scores(mae=1.0), wide, recent_mae=nan_nights).verdict == BROKEN


def test_undefined_scores_are_reported_not_broken():
    verdict = judge(scores(aggregate_error_pct=math.nan, spearman=math.nan))
    assert verdict.verdict == LESS_ACCURATE
    assert "aggregate error undefined" in verdict.reason
    assert "Spearman undefined" in verdict.reason


def test_several_reasons_are_listed():
    verdict = judge(scores(aggregate_error_pct=-13.4, spearman=0.1))
    assert verdict.reasons == ("aggregate error -13.40% beyond ±10%", "Spearman 0.100 below 0.3")
    assert verdict.reason == "; ".join(verdict.reasons)


def test_gates_defaults_are_the_documented_ones():
    assert Gates() == gates.Gates(10.0, 0.3, 1.5, 2.0, 7, 3)


def _night(run_id: str, hour: int, mae: float, **changes) -> dict:
    row = {
        "run_id": run_id,
        "recorded_at": datetime(2026, 6, 1, hour),
        "as_of_date": date(2026, 6, 1),
        "holdout_days": 182.0,
        "is_backfill": False,
        "status": "scored",
        "mae": mae,
    }
    return {**row, **changes}


def test_recent_nights_are_nightly_scored_comparable_runs_newest_first():
    history = pd.DataFrame(
        [
            _night("a", 1, 0.1),
            _night("b", 2, 0.2),
            _night("backfill", 3, 9.0, is_backfill=True),
            _night("short", 4, 9.0, holdout_days=90.0),
            _night("unfitted", 5, math.nan, status="not fitted: too few"),
            _night("this", 6, 9.0),
            _night("c", 7, 0.3),
        ]
    )
    assert recent_nightly_mae(history, 182.0, exclude_run="this") == [0.3, 0.2, 0.1]
    assert recent_nightly_mae(history.iloc[:0], 182.0) == []


def test_a_backfill_is_a_run_whose_config_asks_dbt_for_an_as_of_date():
    assert requested_as_of_date({}) is None
    assert requested_as_of_date({"ops": {"raw_tables": {"config": {"full_refresh": True}}}}) is None
    assert requested_as_of_date({"ops": {"dbt_models": {"config": {"full_refresh": True}}}}) is None
    config = {"ops": {"dbt_models": {"config": {"as_of_date": "2026-01-31"}}}}
    assert requested_as_of_date(config) == "2026-01-31"
