"""ltv_pipeline.clv.forecast: fitting on the warehouse summary, predictions, backtest scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltv_pipeline import clv
from ltv_pipeline.clv import backtest, forecast

TRUTH = (0.6, 6.0, 0.8, 3.0)  # r, alpha (weeks), a, b
GG = (6.0, 4.0, 15.0)


def simulated_summary(n: int, seed: int, holdout_days: float = 182.0) -> pd.DataFrame:
    """Buyers observed 1-2 years (days), with the calibration split a holdout before the end.

    The holdout counts come from continuing each simulated customer's own process, so the
    backtest compares the model with what the model's world actually did next.
    """
    rng = np.random.default_rng(seed)
    r, alpha, a, b = TRUTH
    t_days = rng.uniform(250.0, 730.0, n)
    cal_t = t_days - holdout_days
    lam = rng.gamma(r, 1.0 / alpha, n) / 7.0  # per day
    p = rng.beta(a, b, n)
    rows = []
    for i in range(n):
        times, t, alive = [], 0.0, True
        while alive:
            t += rng.exponential(1.0 / lam[i])
            if t > t_days[i]:
                break
            times.append(t)
            alive = rng.random() >= p[i]
        times = np.array(times)
        cal = times[times < cal_t[i]]
        rows.append(
            {
                "customer_id": i + 1,
                "frequency": len(times),
                "recency_days": times[-1] if len(times) else 0.0,
                "t_days": t_days[i],
                "calibration_frequency": len(cal),
                "calibration_recency_days": cal[-1] if len(cal) else 0.0,
                "calibration_t_days": cal_t[i],
                "holdout_purchases": len(times) - len(cal),
                "is_in_calibration": True,
            }
        )
    frame = pd.DataFrame(rows)
    m = clv.simulate_gamma_gamma(*GG, frame["frequency"].to_numpy(float), rng)
    frame["monetary_value"] = np.where(frame["frequency"] > 0, m, np.nan)
    cal_m = clv.simulate_gamma_gamma(*GG, frame["calibration_frequency"].to_numpy(float), rng)
    frame["calibration_monetary_value"] = np.where(
        frame["calibration_frequency"] > 0, cal_m, np.nan
    )
    return frame


@pytest.fixture(scope="module")
def summary():
    return simulated_summary(4000, seed=5)


def test_score_by_hand():
    s = backtest.score("m", np.array([0, 1, 3, 4]), np.array([0.5, 1.0, 2.0, 4.5]))
    assert s.actual_total == 8 and s.predicted_total == 8
    assert s.aggregate_error_pct == 0
    assert s.mae == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    assert s.spearman == pytest.approx(1.0)  # same order
    s = backtest.score("m", np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]))
    assert s.spearman == pytest.approx(-1.0)
    assert s.aggregate_error_pct == 0
    s = backtest.score("m", np.array([2, 2]), np.array([1.0, 2.0]))
    assert s.aggregate_error_pct == pytest.approx(-25.0)
    assert np.isnan(s.spearman)  # constant actuals: no ranking to compare
    with pytest.raises(ValueError, match="one length"):
        backtest.score("m", np.array([1, 2]), np.array([1.0]))


def test_score_of_counted_rows_is_scipys_score_of_every_customer():
    """Rows standing for several customers score as those customers on rows of their own:
    totals, MAE and Spearman's rho against numpy and scipy on the expanded arrays, on ties
    in both the actual and the predicted values (a rank that ignores the counts, or a tie
    that is not averaged, would differ)."""
    from scipy import stats

    rng = np.random.default_rng(3)
    actual = rng.choice([0.0, 0.0, 1.0, 2.0, 5.0], 60)
    predicted = np.round(rng.gamma(1.0, 1.0, 60), 1)  # rounded: ties
    customers = rng.choice([1, 1, 2, 7, 40], 60)
    got = backtest.score("m", actual, predicted, customers)
    a, p = np.repeat(actual, customers), np.repeat(predicted, customers)
    assert got.customers == len(a) == customers.sum()
    assert got.actual_total == pytest.approx(a.sum(), rel=1e-12)
    assert got.predicted_total == pytest.approx(p.sum(), rel=1e-12)
    assert got.mae == pytest.approx(np.abs(p - a).mean(), rel=1e-12)
    assert got.spearman == pytest.approx(stats.spearmanr(a, p).statistic, rel=1e-10)
    assert got.spearman != pytest.approx(stats.spearmanr(actual, predicted).statistic, rel=1e-3)
    with pytest.raises(ValueError, match="at least 1"):
        backtest.score("m", actual, predicted, np.zeros(60))


def test_backtest_of_the_grouped_summary_is_the_backtest_of_every_customer(summary):
    """The asset reads the calibration summary grouped by all its columns, with a count: the
    fit, both scores and the chart's groups equal those of one row per customer."""
    from ltv_pipeline.charts import backtest_groups

    columns = [c for c in summary.columns if c.startswith("calibration_")]
    columns += ["is_in_calibration", "holdout_purchases"]
    # customers repeated 1-3 times, so that groups of several exist beside one-row groups
    rng = np.random.default_rng(8)
    each = summary.loc[summary.index.repeat(rng.integers(1, 4, len(summary))), columns]
    grouped = each.groupby(columns, as_index=False, dropna=False).size()
    grouped = grouped.rename(columns={"size": "customers"})
    assert len(grouped) < len(each) / 1.5
    one, many = backtest.backtest(each, 182.0), backtest.backtest(grouped, 182.0)
    fitted_one, fitted_many = one.models.bgnbd.params(), many.models.bgnbd.params()
    assert fitted_many == pytest.approx(fitted_one, rel=1e-6)
    for a, b in [(one.model_score, many.model_score), (one.baseline_score, many.baseline_score)]:
        assert a.customers == b.customers == len(each)
        for field in ("actual_total", "predicted_total", "mae", "spearman"):
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-6), field
    pd.testing.assert_frame_equal(
        backtest_groups(one.scored), backtest_groups(many.scored), rtol=1e-6
    )
    # the fit's input grouped for each model, as the asset also reads it: the same backtest
    cal = each[each["is_in_calibration"]].rename(columns=lambda c: c.replace("calibration_", ""))
    fit_inputs = _grouped_for_each_model(cal)
    split = backtest.backtest(grouped, 182.0, fit_inputs=fit_inputs)
    assert split.models.metadata() == pytest.approx(many.models.metadata(), rel=1e-7)
    assert split.model_score.mae == pytest.approx(many.model_score.mae, rel=1e-7)


def _grouped_for_each_model(customers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One customer a row -> forecast.fit_grouped's tables, grouped by pandas (the asset's
    are grouped by the warehouse): purchases by (frequency, recency, T), spend by (frequency,
    spend) over the repeat buyers."""
    purchases = customers.groupby(["frequency", "recency_days", "t_days"], as_index=False).size()
    repeat = customers[customers["frequency"] > 0]
    spend = repeat.groupby(["frequency", "monetary_value"], as_index=False).size()
    return (
        purchases.rename(columns={"size": "customers"}),
        spend.rename(columns={"size": "customers"}),
    )


def test_group_for_fit_sums_the_counts_of_each_models_groups(summary):
    """forecast.group_for_fit (the backtest regroups its summary with it) gives the tables
    pandas groups here by hand, from one row per customer and from a summary grouped by more
    columns with counts (the counts of rows that fall in one model group are added up)."""
    cols = ["frequency", "recency_days", "t_days", "monetary_value"]
    rng = np.random.default_rng(3)
    each = summary.loc[summary.index.repeat(rng.integers(1, 4, len(summary))), cols]
    each = each.reset_index(drop=True)
    purchases, spend = _grouped_for_each_model(each)
    got = forecast.group_for_fit(*(each[c] for c in cols))
    pd.testing.assert_frame_equal(got[0], purchases, check_dtype=False)
    pd.testing.assert_frame_equal(got[1], spend, check_dtype=False)
    # grouped by a fifth column too (as the backtest's summary is, by holdout purchases):
    # several rows per model group, whose counts must be added
    wider = each.assign(extra=rng.integers(0, 3, len(each)))
    counted = wider.groupby([*cols, "extra"], as_index=False, dropna=False).size()
    assert len(counted) > len(purchases)
    got = forecast.group_for_fit(*(counted[c] for c in cols), counted["size"])
    pd.testing.assert_frame_equal(got[0], purchases, check_dtype=False)
    pd.testing.assert_frame_equal(got[1], spend, check_dtype=False)


def test_group_for_fit_leaves_out_null_keys_and_takes_an_empty_summary():
    """As pandas groups (its groupby drops a null key): a null recency or monetary value is
    in no group of that model; -0.0 and 0.0 are one value; rows equal in the later keys but
    not the first are two groups (a grouping by the last key alone would merge them)."""
    nan = float("nan")
    summary = pd.DataFrame(
        {
            "frequency": [2, 2, 0, 2, 1, 1, 3],
            "recency_days": [5.0, 5.0, 0.0, nan, 3.0, 3.0, 5.0],
            "t_days": [9.0, 9.0, 4.0, 9.0, 8.0, 8.0, 9.0],
            "monetary_value": [10.0, 10.0, nan, nan, -0.0, 0.0, 10.0],
            "customers": [1, 2, 4, 8, 16, 32, 64],
        }
    )
    purchases, spend = forecast.group_for_fit(*(summary[c] for c in summary.columns))
    assert purchases.to_dict("list") == {
        "frequency": [0, 1, 2, 3],
        "recency_days": [0.0, 3.0, 5.0, 5.0],
        "t_days": [4.0, 8.0, 9.0, 9.0],
        "customers": [4, 48, 3, 64],
    }
    assert spend.to_dict("list") == {
        "frequency": [1, 2, 3],
        "monetary_value": [0.0, 10.0, 10.0],
        "customers": [48, 3, 64],
    }
    empty = forecast.group_for_fit(*(summary[c].iloc[:0] for c in summary.columns))
    assert [list(frame.columns) for frame in empty] == [
        ["frequency", "recency_days", "t_days", "customers"],
        ["frequency", "monetary_value", "customers"],
    ]
    assert [len(frame) for frame in empty] == [0, 0]


def test_historical_average_is_the_rate_so_far():
    got = backtest.historical_average(np.array([0, 2, 3]), np.array([10.0, 100.0, 0.0]), 50.0)
    np.testing.assert_allclose(got, [0.0, 1.0, 0.0])


def test_fit_models_refuses_too_few_repeat_buyers():
    frame = pd.DataFrame(
        {
            "frequency": [0, 1, 2, 0],
            "recency_days": [0.0, 5.0, 30.0, 0.0],
            "t_days": [40.0, 60.0, 90.0, 10.0],
            "monetary_value": [np.nan, 10.0, 12.0, np.nan],
        }
    )
    with pytest.raises(forecast.ModelNotFitted, match="2 customers with a repeat purchase"):
        forecast.fit_models(*(frame[c] for c in frame.columns))


def test_fit_models_recovers_the_truth_in_weeks_and_days(summary):
    cols = [summary[c] for c in ("frequency", "recency_days", "t_days", "monetary_value")]
    weeks = forecast.fit_models(*cols, time_unit_days=7.0)
    days = forecast.fit_models(*cols, time_unit_days=1.0)
    # the time unit only rescales alpha
    assert days.bgnbd.alpha == pytest.approx(weeks.bgnbd.alpha * 7, rel=1e-6)
    for name in ("r", "a", "b"):
        assert getattr(days.bgnbd, name) == pytest.approx(getattr(weeks.bgnbd, name), rel=1e-6)
    # 4000 buyers: each parameter within 25% of the truth (several standard errors here)
    for got, want in zip(weeks.bgnbd.params().values(), TRUTH, strict=True):
        assert got == pytest.approx(want, rel=0.25)
    assert weeks.metadata()["bgnbd_r"] == weeks.bgnbd.r


def test_fit_models_on_the_grouped_summary_is_the_fit_on_every_customer(summary):
    """The warehouse hands the fit one row per distinct (frequency, recency, T, spend) with a
    customer count; the fit must be the one on every customer's row. A fit that ignored the
    counts, or applied them to one model only, gives other parameters."""
    cols = ("frequency", "recency_days", "t_days", "monetary_value")
    # whole days, as the warehouse delivers them, and customers who share every number with
    # one to three others (repeat buyers too, so that the spend model's counts matter)
    summary = summary.assign(
        recency_days=np.ceil(summary["recency_days"]), t_days=np.ceil(summary["t_days"])
    )
    copies = np.random.default_rng(5).integers(1, 4, len(summary))
    summary = summary.loc[summary.index.repeat(copies)]
    every = forecast.fit_models(*(summary[c] for c in cols))
    grouped = summary.groupby(list(cols), dropna=False).size().reset_index(name="customers")
    assert len(grouped) <= 0.5 * len(summary)
    fit = forecast.fit_models(*(grouped[c] for c in cols), grouped["customers"])
    for name, value in every.metadata().items():
        assert fit.metadata()[name] == pytest.approx(value, rel=1e-7), name
    unweighted = forecast.fit_models(*(grouped[c] for c in cols))
    assert unweighted.bgnbd.r != pytest.approx(every.bgnbd.r, rel=1e-3)
    # the repeat-buyer minimum counts customers, not rows
    few = grouped[grouped["frequency"] > 0].head(3).assign(customers=10)
    assert len(few) == 3
    with pytest.raises(forecast.ModelNotFitted, match="30 customers with a repeat purchase"):
        forecast.fit_models(*(few[c] for c in cols), few["customers"], min_repeat_customers=31)


def test_each_model_fitted_on_its_own_groups_is_the_fit_on_every_customer(summary):
    """The predictions' fit reads the summary grouped twice, by (frequency, recency, T) for
    BG/NBD and by (frequency, spend) for Gamma-Gamma: far fewer rows than grouping by all
    four, and the same fit as one row per customer. A fit that used one table's counts for
    both, or ignored either table's, gives other parameters."""
    cols = ("frequency", "recency_days", "t_days", "monetary_value")
    summary = summary.assign(
        recency_days=np.ceil(summary["recency_days"]),
        t_days=np.ceil(summary["t_days"]),
        # spend in whole currency units, so that repeat buyers share it too
        monetary_value=np.round(summary["monetary_value"]),
    )
    copies = np.random.default_rng(6).integers(1, 4, len(summary))
    each = summary.loc[summary.index.repeat(copies)]
    every = forecast.fit_models(*(each[c] for c in cols))
    purchases, spend = _grouped_for_each_model(each)
    # rows stand for several customers in both tables
    assert len(purchases) < len(each) / 1.5
    assert len(spend) < (each["frequency"] > 0).sum() / 1.5
    fit = forecast.fit_grouped(purchases, spend)
    assert fit.metadata() == pytest.approx(every.metadata(), rel=1e-7)
    # one-time buyers in the spend table (no spend) are not fitted on
    with_one_time = pd.concat(
        [spend, pd.DataFrame({"frequency": [0], "monetary_value": [np.nan], "customers": [9]})]
    )
    assert forecast.fit_grouped(purchases, with_one_time).metadata() == pytest.approx(
        every.metadata(), rel=1e-7
    )
    # each table's own counts weight its own model
    uncounted_spend = forecast.fit_grouped(purchases, spend.assign(customers=1))
    assert uncounted_spend.bgnbd.params() == pytest.approx(every.bgnbd.params(), rel=1e-7)
    assert uncounted_spend.gamma_gamma.p != pytest.approx(every.gamma_gamma.p, rel=1e-3)
    uncounted_purchases = forecast.fit_grouped(purchases.assign(customers=1), spend)
    assert uncounted_purchases.bgnbd.r != pytest.approx(every.bgnbd.r, rel=1e-3)
    assert uncounted_purchases.gamma_gamma.params() == pytest.approx(
        every.gamma_gamma.params(), rel=1e-7
    )
    # the repeat-buyer minimum counts the spend table's customers, not its rows
    repeat_buyers = int((each["frequency"] > 0).sum())
    with pytest.raises(forecast.ModelNotFitted, match=f"{repeat_buyers} customers with a"):
        forecast.fit_grouped(purchases, spend, min_repeat_customers=repeat_buyers + 1)


def test_predict_customers_applies_margin_and_discount(summary):
    models = forecast.fit_models(
        *(summary[c] for c in ("frequency", "recency_days", "t_days", "monetary_value"))
    )
    out = forecast.predict_customers(summary, models, margin_rate=0.4, yearly_discount_rate=0.1)
    assert list(out["customer_id"]) == list(summary["customer_id"])
    np.testing.assert_allclose(out["predicted_clv"], out["predicted_revenue"] * 0.4)
    x = summary["frequency"].to_numpy(float)
    tx, T = summary["recency_days"].to_numpy() / 7, summary["t_days"].to_numpy() / 7
    np.testing.assert_allclose(out["p_alive"], clv.p_alive(models.bgnbd, x, tx, T))
    horizon = 12 * clv.DAYS_PER_MONTH / 7
    np.testing.assert_allclose(
        out["expected_purchases"], clv.expected_purchases(models.bgnbd, horizon, x, tx, T)
    )
    undiscounted = forecast.predict_customers(
        summary, models, margin_rate=0.4, yearly_discount_rate=0.0
    )
    # discounting lowers every value, by at most a year's discount
    ratio = out["predicted_clv"] / undiscounted["predicted_clv"]
    assert ((ratio < 1) & (ratio > 1 / 1.1 - 1e-12)).all()
    # a customer without repeat spend is valued at the population mean order value
    population = models.gamma_gamma.p * models.gamma_gamma.v / (models.gamma_gamma.q - 1)
    np.testing.assert_allclose(out.loc[x == 0, "expected_order_value"], population)
    assert (out["predicted_clv"] >= 0).all() and out["p_alive"].between(0, 1).all()


def test_predict_customers_without_a_model_is_null(summary):
    out = forecast.predict_customers(summary, None, margin_rate=0.4, yearly_discount_rate=0.1)
    assert len(out) == len(summary)
    assert out[["p_alive", "expected_purchases", "predicted_clv"]].isna().all().all()


def test_backtest_beats_the_historical_average(summary):
    result = backtest.backtest(summary, 182.0)
    model, baseline = result.model_score, result.baseline_score
    assert model.customers == baseline.customers == len(summary)
    assert model.actual_total == summary["holdout_purchases"].sum()
    # the model's world: the model must be close in total and beat the naive rate
    assert abs(model.aggregate_error_pct) < 10
    assert model.mae < baseline.mae
    assert model.spearman > baseline.spearman
    assert len(result.scored) == len(summary)
    assert (result.scored["customers"] == 1).all()


def test_backtest_scores_only_customers_with_calibration_history(summary):
    frame = summary.copy()
    frame.loc[:99, "is_in_calibration"] = False
    result = backtest.backtest(frame, 182.0)
    assert result.model_score.customers == len(summary) - 100
    with pytest.raises(forecast.ModelNotFitted, match="no customer"):
        backtest.backtest(frame.assign(is_in_calibration=False), 182.0)


def test_the_blocking_predictions_check_counts_each_rule_on_hand_made_rows(tmp_path):
    """predictions_cover_buyers_and_are_valid counts every rule in one scan: each case breaks
    rules on purpose, and its description is the count worked out by hand."""
    import duckdb

    from ltv_pipeline.defs.clv import predictions_cover_buyers_and_are_valid
    from ltv_pipeline.warehouse.duckdb import DuckDBWarehouse

    assert all(spec.blocking for spec in predictions_cover_buyers_and_are_valid.check_specs)
    path = tmp_path / "warehouse.duckdb"
    good = "(1, 0.5, 1.0, 20.0, 5.0), (2, 1.0, 0.0, 10.0, 0.0), (3, 0.0, 2.0, 1.0, 3.0)"
    cases = {
        good: "",
        # customer 2 twice: 3 distinct customers still, 1 repeat
        good + ", (2, 0.5, 1.0, 20.0, 5.0)": "1 repeated customer_id rows",
        # a null key is not a buyer's prediction: 3 distinct keys, 1 row without one
        good + ", (null, 0.5, 1.0, 20.0, 5.0)": "1 rows without a customer_id",
        # P(alive) just outside [0, 1] both ways; NaN is no probability either
        "(1, 1.0000001, 1.0, 20.0, 5.0), (2, -0.1, 0.0, 10.0, 0.0), "
        "(3, 'nan'::double, 2.0, 1.0, 3.0)": "3 P(alive) outside [0, 1]",
        # a negative CLV, infinite purchases, a zero order value: three bad rows
        "(1, 0.5, 1.0, 20.0, -5.0), (2, 1.0, 'inf'::double, 10.0, 0.0), (3, 0.0, 2.0, 0.0, 3.0)": (
            "3 negative or non-finite predictions"
        ),
        # buyer 3 without a prediction
        "(1, 0.5, 1.0, 20.0, 5.0), (2, 1.0, 0.0, 10.0, 0.0)": (
            "1 buyers without exactly one prediction"
        ),
        # one row of a fitted model left null: 3 rows, 2 fitted
        "(1, 0.5, 1.0, 20.0, 5.0), (2, 1.0, 0.0, 10.0, 0.0), (3, null, 2.0, 1.0, 3.0)": (
            "1 customers without a prediction from a fitted model"
        ),
    }
    for rows, problem in cases.items():
        with duckdb.connect(str(path)) as con:
            con.execute("create schema if not exists marts")
            con.execute("create schema if not exists intermediate")
            con.execute(
                "create or replace table intermediate.int_customer_purchases_summarized as "
                "select * from (values (1), (2), (3)) as t(customer_id)"
            )
            con.execute(
                "create or replace table marts.customer_predictions as select "
                "customer_id::bigint as customer_id, p_alive::double as p_alive, "
                "expected_purchases::double as expected_purchases, "
                "expected_order_value::double as expected_order_value, "
                "predicted_clv::double as predicted_clv from (values "
                f"{rows}) as t(customer_id, p_alive, expected_purchases, "
                "expected_order_value, predicted_clv)"
            )
        result = predictions_cover_buyers_and_are_valid(warehouse=DuckDBWarehouse(path=str(path)))
        assert result.passed == (not problem), rows
        assert result.description == (problem or "predictions valid"), rows
