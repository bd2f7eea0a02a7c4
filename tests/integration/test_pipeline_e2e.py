"""The whole pipeline on a generated shop, checked against independent computations.

Two shops from one seed: a clean one, and the same shop with bad rows of every kind injected.
Injection never changes a clean row, so both must give the same marts, and the marts must
equal a pandas computation made straight from the clean CSV files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from ltv_pipeline import clv, settings
from ltv_pipeline.definitions import defs
from ltv_pipeline.defs.dbt import KEPT_INVOCATIONS
from ltv_pipeline.defs.resources import dbt_project
from ltv_pipeline.sample.generate import generate_shop
from tests.helpers import (
    check_results,
    fitted_parameters,
    materialization_metadata,
    materialized_keys,
    run_pipeline,
)
from tests.reference import Params, customer_months, reference_marts
from tests.reference import load as load_reference

SEED = 11
CUSTOMERS = 600


#: Every log entry of each run built here (Dagster's, the assets' and the libraries'), by run id.
RUN_LOGS: dict[str, list[dg.EventLogEntry]] = {}


def _build(root: Path, bad_share: float):
    raw = root / "raw"
    summary = generate_shop(raw, customers=CUSTOMERS, seed=SEED, bad_share=bad_share)
    instance = dg.DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTV_DATA_DIR", str(root))
        mp.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
        result = run_pipeline(instance=instance)
    RUN_LOGS[result.run_id] = instance.all_logs(result.run_id)
    return summary, result, root / "warehouse.duckdb"


@pytest.fixture(scope="module")
def old_invocations():
    """Folders as dagster-dbt leaves one per dbt invocation, dated 1970: the run must prune."""
    target = Path(dbt_project.project_dir) / dbt_project.target_path
    planted = []
    for i in range(KEPT_INVOCATIONS + 1):
        folder = target / f"dbt_models-0ld{os.getpid() % 10_000:04d}-{i:07d}"
        folder.mkdir(parents=True)
        (folder / "dbt.log").write_text("an old night")
        os.utime(folder, (86_400 + i, 86_400 + i))
        planted.append(folder)
    yield planted
    for folder in planted:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, old_invocations):
    return _build(tmp_path_factory.mktemp("clean"), 0.0)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("dirty"), 0.03)


def _query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_asset_materializes_and_every_check_passes(clean):
    _, result, _ = clean
    assert result.success
    graph = defs().resolve_asset_graph()
    expected = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    assert materialized_keys(result) == expected
    checks = check_results(result)
    assert set(checks) == {key.name for key in graph.asset_check_keys}  # dbt tests + Python
    # 600 customers over two years are too few to show a lifespan: the tail would be 98% of
    # it, so the WARN check says so (ltv_summary.unreliable_reason); every other check passes
    failed = [name for name, ok in checks.items() if not ok]
    assert failed == ["ltv_summary_overall_lifespan_is_reliable"], failed


def test_a_run_prunes_the_dbt_invocation_folders(clean, old_invocations):
    # each night's dbt invocation leaves a 6 MB folder; the oldest beyond the kept ones go
    # at least two are beyond the newest kept (this run's among them): the two oldest
    assert [folder.exists() for folder in old_invocations[:2]] == [False, False]
    assert sum(folder.exists() for folder in old_invocations) <= KEPT_INVOCATIONS - 1


def test_a_clean_run_logs_no_warning_and_no_traceback(clean):
    """What the Dagster UI shows of a clean night: nothing to look into. (Every run used to log
    two WARNINGs with 70-line tracebacks from dagster-dbt's adapter, the run succeeding.)"""
    _, result, _ = clean
    entries = RUN_LOGS[result.run_id]
    assert len(entries) > 100  # the run's whole log, not a part of it
    noisy = [
        (logging.getLevelName(entry.level), entry.message[:300])
        for entry in entries
        if entry.level >= logging.WARNING or "Traceback" in entry.message
    ]
    assert noisy == []


def test_net_revenue_equals_an_independent_sum_of_the_csv(clean):
    _, _, warehouse = clean
    orders = pd.read_csv(warehouse.parent / "raw" / "orders.csv", dtype=str, keep_default_na=False)
    expected = sum(
        Decimal(a)
        for a, s in zip(orders["amount"], orders["status"], strict=True)
        if s == "completed"
    )
    # published as DOUBLE; each value is a cents amount, exact again as a decimal
    (got,) = _query(
        warehouse, "select sum(cast(net_revenue as decimal(18, 2))) from marts.customers"
    )[0]
    assert got == expected


def test_customers_mart_matches_the_pandas_reference(clean):
    _, _, warehouse = clean
    ref = reference_marts(warehouse.parent / "raw")
    got = (
        pd.DataFrame(
            _query(
                warehouse,
                "select customer_id, purchases, net_revenue, gross_margin, "
                "first_order_date, last_order_date, days_since_last_purchase, "
                "is_churned from marts.customers where has_purchased",
            ),
            columns=[
                "customer_id",
                "purchases",
                "net_revenue",
                "gross_margin",
                "first_order_date",
                "last_order_date",
                "days_since_last_purchase",
                "is_churned",
            ],
        )
        .set_index("customer_id")
        .sort_index()
    )
    want = ref["customers"].sort_index()
    assert got.index.tolist() == want.index.tolist()
    assert got["purchases"].tolist() == want["purchases"].tolist()
    assert got["net_revenue"].astype(float).tolist() == pytest.approx(want["net_revenue"].tolist())
    assert got["gross_margin"].astype(float).tolist() == pytest.approx(
        want["gross_margin"].tolist()
    )
    assert got["first_order_date"].tolist() == want["first_order_date"].tolist()
    assert got["days_since_last_purchase"].tolist() == want["days_since_last_purchase"].tolist()
    assert got["is_churned"].tolist() == want["is_churned"].tolist()


def test_churn_cac_cohort_and_ltv_marts_match_the_pandas_reference(clean):
    _, _, warehouse = clean
    ref = reference_marts(warehouse.parent / "raw")
    churn = _query(
        warehouse,
        "select month_start, active_at_start, new_customers, "
        "churned_customers, reactivated_customers, active_at_end "
        "from marts.churn_monthly order by 1",
    )
    want = ref["churn_monthly"]
    assert [row[1:] for row in churn] == [
        tuple(int(v) for v in r)
        for r in want[
            [
                "active_at_start",
                "new_customers",
                "churned_customers",
                "reactivated_customers",
                "active_at_end",
            ]
        ].itertuples(index=False)
    ]
    assert sum(row[3] for row in churn) > 0, "the generated shop must show churn"

    cac = {
        (c, m): (float(s), n)
        for c, m, s, n in _query(
            warehouse,
            "select acquisition_channel, month_start, spend, new_customers from marts.cac_monthly",
        )
    }
    want_cac = {
        (r.acquisition_channel, r.month_start): (r.spend, int(r.new_customers))
        for r in ref["cac_monthly"].itertuples()
    }
    assert cac.keys() == want_cac.keys()
    for key, (spend, new) in want_cac.items():
        assert cac[key][0] == pytest.approx(spend) and cac[key][1] == new, key

    cohort = _query(
        warehouse,
        "select cohort_month, months_since_acquisition, "
        "active_customers, cumulative_gross_margin_per_customer "
        "from marts.cohort_activity order by 1, 2",
    )
    want_cohort = ref["cohort_activity"]
    assert [(r[0], r[1], r[2]) for r in cohort] == [
        (r.cohort_month, r.since, r.active_customers) for r in want_cohort.itertuples()
    ]
    assert [r[3] for r in cohort] == pytest.approx(
        want_cohort["cumulative_gross_margin_per_customer"].tolist()
    )

    for (dimension, value), expected in ref["ltv_summary"].items():
        ((row,),) = [
            _query(
                warehouse,
                "select to_json(s) from marts.ltv_summary s "
                f"where dimension = '{dimension}' and dimension_value = '{value}'",
            )[0]
        ]
        got = json.loads(row)
        for name, number in expected.items():
            if number is None:
                assert got[name] is None, (dimension, value, name)
            else:
                assert got[name] == pytest.approx(number, rel=1e-9), (dimension, value, name)


def _churn_and_cohorts_match(warehouse: Path, ref: dict) -> int:
    """Assert churn_monthly's counts and cohort_activity's active customers equal the
    reference's; return the churned customers, summed over months."""
    columns = [
        "active_at_start",
        "new_customers",
        "churned_customers",
        "reactivated_customers",
        "active_at_end",
    ]
    churn = _query(
        warehouse, f"select {', '.join(columns)} from marts.churn_monthly order by month_start"
    )
    want = ref["churn_monthly"][columns]
    assert churn == [tuple(int(v) for v in r) for r in want.itertuples(index=False)]
    cohort = _query(
        warehouse,
        "select cohort_month, months_since_acquisition, active_customers "
        "from marts.cohort_activity order by 1, 2",
    )
    assert cohort == [
        (r.cohort_month, r.since, r.active_customers) for r in ref["cohort_activity"].itertuples()
    ]
    return sum(r[2] for r in churn)


@pytest.mark.parametrize("churn_days", [31, 400])
def test_churn_and_cohorts_match_the_reference_for_short_and_long_churn_windows(
    clean, churn_days, tmp_path, monkeypatch
):
    """Customer months are stored only when active at the start or purchasing: the shortest
    churn window allowed (31 days) and one longer than the shop's history keep every count."""
    shutil.copytree(clean[2].parent / "raw", tmp_path / "raw")
    monkeypatch.setenv("LTV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    selection = (
        dg.AssetSelection.keys(
            dg.AssetKey(["marts", "churn_monthly"]), dg.AssetKey(["marts", "cohort_activity"])
        )
        .upstream()
        .required_multi_asset_neighbors()
    )
    assert run_pipeline(selection, dbt_vars={"churn_inactivity_days": churn_days}).success
    ref = reference_marts(tmp_path / "raw", Params(churn_days=churn_days))
    churned = _churn_and_cohorts_match(tmp_path / "warehouse.duckdb", ref)
    assert churned > 0


def test_bad_rows_are_quarantined_with_their_reasons_and_nothing_is_lost(dirty):
    summary, result, warehouse = dirty
    assert result.success
    # as on the clean shop, only the WARN on the small shop's unreliable lifespan fails
    failed = [name for name, ok in check_results(result).items() if not ok]
    assert failed == ["ltv_summary_overall_lifespan_is_reliable"], failed
    held = {}
    for table, reason, n in _query(
        warehouse, "select source_table, reason, count(*) from raw.quarantine group by all"
    ):
        held.setdefault(table, {})[reason] = n
    assert held == summary.bad_rows
    kinds = {(t, r) for t, reasons in held.items() for r in reasons}
    assert len(kinds) >= 15
    # the quarantine asset shows the same counts in the UI, one line per table and reason,
    # the largest first (the generator's own record of what it injected is the reference)
    shown = materialization_metadata(result, "raw/quarantine")["by_reason"]
    lines = [(r.data["table"], r.data["reason"], r.data["rows"]) for r in shown.records]
    assert sorted(lines) == sorted(
        (t, r, n) for t, rs in summary.bad_rows.items() for r, n in rs.items()
    )
    assert [n for _, _, n in lines] == sorted((n for _, _, n in lines), reverse=True)
    orders = materialization_metadata(result, "raw/orders")["quarantine_by_reason"]
    assert {r.data["reason"]: r.data["rows"] for r in orders.records} == summary.bad_rows["orders"]
    injected = json.loads((warehouse.parent / "raw" / "bad_rows.json").read_text())
    assert injected == summary.bad_rows


def test_bad_rows_do_not_change_any_mart(clean, dirty):
    for table in (
        "customers",
        "ltv_summary",
        "churn_monthly",
        "cac_monthly",
        "cohort_activity",
        "ltv_cac_by_channel",
        "ltv_cac_by_channel_month",
        "predicted_value_by_channel",
        "predicted_value_by_channel_month",
        "customer_segments",
        "segment_summary",
        "customer_predictions",
        "clv_backtest",
    ):
        sql = f"select * from marts.{table} order by all"
        # floats may differ in the last bit: parallel sums add in a different order
        pd.testing.assert_frame_equal(
            _frame(clean[2], sql), _frame(dirty[2], sql), check_exact=False, rtol=1e-12, obj=table
        )


def _frame(path: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).df()


def _purchase_summary_from_csv(raw: Path, as_of: pd.Timestamp, holdout_start: pd.Timestamp):
    """The BG/NBD summary straight from orders.csv with pandas, in whole days as lifetimes
    counts them: a customer's completed orders on one day are one purchase."""
    orders = pd.read_csv(raw / "orders.csv")
    orders = orders[orders["status"] == "completed"].copy()
    at = pd.to_datetime(orders["ordered_at"], utc=True).dt.tz_localize(None)
    orders["at"] = at.dt.normalize()
    orders = orders[orders["at"] <= as_of]
    orders = orders.groupby(["customer_id", "at"], as_index=False)["amount"].sum()
    orders = orders.sort_values(["customer_id", "at"])
    orders["n"] = orders.groupby("customer_id").cumcount()
    day = pd.Timedelta(days=1)
    g = orders.groupby("customer_id")
    out = pd.DataFrame(
        {
            "frequency": g.size() - 1,
            "recency_days": (g["at"].max() - g["at"].min()) / day,
            "t_days": (as_of - g["at"].min()) / day,
        }
    )
    repeat = orders[orders["n"] > 0].groupby("customer_id")["amount"].mean()
    out["monetary_value"] = repeat.reindex(out.index)
    cal = orders[orders["at"] < holdout_start]
    gc = cal.groupby("customer_id")
    out["calibration_frequency"] = gc.size() - 1
    out["calibration_recency_days"] = (gc["at"].max() - gc["at"].min()) / day
    out["calibration_t_days"] = (holdout_start - day - gc["at"].min()) / day
    cal_repeat = cal[cal["n"] > 0].groupby("customer_id")["amount"].mean()
    out["calibration_monetary_value"] = cal_repeat.reindex(out.index)
    out["holdout_purchases"] = (
        orders[orders["at"] >= holdout_start]
        .groupby("customer_id")
        .size()
        .reindex(gc.size().index, fill_value=0)
    )
    return out


def test_clv_summary_and_fit_match_an_independent_computation(clean):
    _, result, warehouse = clean
    as_of, holdout_start = _query(
        warehouse, "select as_of_date, holdout_start_date from intermediate.int_reporting_window"
    )[0]
    want = _purchase_summary_from_csv(
        warehouse.parent / "raw", pd.Timestamp(as_of), pd.Timestamp(holdout_start)
    )
    got = _frame(
        warehouse, "select * from intermediate.int_customer_purchases_summarized"
    ).set_index("customer_id")
    got = got.loc[want.index]
    assert len(got) == len(want) > 300
    for column in want.columns:
        np.testing.assert_allclose(
            got[column].astype(float), want[column].astype(float), rtol=1e-12, err_msg=column
        )
    # the glossary beside the figures: each LTV variant and parameter, from the YAML
    manifest = json.loads((settings.DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    (ltv_node,) = (n for n in manifest["nodes"].values() if n["name"] == "ltv_summary")
    for key in (
        "marts/ltv_summary",
        "marts/customer_predictions",
        "marts/predicted_value_by_channel",
    ):
        terms = {
            r.data["where"]: r.data["meaning"]
            for r in materialization_metadata(result, key)["glossary"].records
        }
        for column in ("historical_ltv", "margin_ltv", "discounted_ltv"):
            meaning = " ".join(ltv_node["columns"][column]["description"].split())
            assert terms[f"ltv_summary.{column}"] == meaning, (key, column)
        assert terms["customer_predictions.predicted_clv"].startswith("Predicted 12-month")
        assert len(terms) == 6  # the five metrics, and the fitted parameters
    # the fits the assets report equal direct fits on the independent summary (weeks): the
    # predictions' on every buyer, the backtest's on the calibration history, each model's
    # on its own columns (the assets read each model's input grouped on its own)
    cal = want[want["calibration_frequency"].notna()]
    for key, rows, prefix in [
        ("marts/customer_predictions", want, ""),
        ("marts/clv_backtest", cal, "calibration_"),
    ]:
        model = fitted_parameters(result, key)
        x = rows[f"{prefix}frequency"].astype(float)
        direct = clv.fit_bgnbd(x, rows[f"{prefix}recency_days"] / 7, rows[f"{prefix}t_days"] / 7)
        for name, value in direct.params().items():
            assert model[f"bgnbd_{name}"] == pytest.approx(value, rel=1e-6), (key, name)
        repeat = x > 0
        spend = clv.fit_gamma_gamma(x[repeat], rows[f"{prefix}monetary_value"][repeat])
        for name, value in spend.params().items():
            assert model[f"gamma_gamma_{name}"] == pytest.approx(value, rel=1e-6), (key, name)


def test_predictions_in_batches_equal_one_pass_and_the_independent_summary(
    clean, tmp_path, monkeypatch
):
    """The predictions are written in batches of the summary (memory at 100M orders). In
    batches of 97 customers (the shop has several hundred buyers) they must be the one-batch
    run's rows, in customer order, and P(alive) must follow from the reported fit and the
    summary computed from orders.csv: a lost, repeated or misaligned batch shows in both."""
    _, result, warehouse = clean
    one_pass = _frame(warehouse, "select * from marts.customer_predictions")
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(warehouse, copy)
    monkeypatch.setenv("LTV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(copy))
    monkeypatch.setattr("ltv_pipeline.defs.clv.PREDICT_BATCH_ROWS", 97)
    key = dg.AssetKey(["marts", "customer_predictions"])
    assert run_pipeline(dg.AssetSelection.assets(key)).success
    batched = _frame(copy, "select * from marts.customer_predictions")
    assert len(batched) > 4 * 97
    assert batched["customer_id"].is_monotonic_increasing
    pd.testing.assert_frame_equal(batched, one_pass)

    as_of, holdout_start = _query(
        warehouse, "select as_of_date, holdout_start_date from intermediate.int_reporting_window"
    )[0]
    want = _purchase_summary_from_csv(
        warehouse.parent / "raw", pd.Timestamp(as_of), pd.Timestamp(holdout_start)
    )
    model = fitted_parameters(result, "marts/customer_predictions")
    fit = clv.BGNBDFit(
        *(model[f"bgnbd_{name}"] for name in ("r", "alpha", "a", "b")), 0.0, 0.0, 0, True
    )
    got = batched.set_index("customer_id").loc[want.index]
    expected = clv.p_alive(fit, want["frequency"], want["recency_days"] / 7, want["t_days"] / 7)
    # the reported parameters have 7 significant digits
    np.testing.assert_allclose(got["p_alive"], expected, rtol=1e-6)


def test_predictions_feed_segments_and_channel_marts(clean):
    _, _, warehouse = clean
    predictions = _frame(warehouse, "select * from marts.customer_predictions")
    customers = _frame(
        warehouse,
        "select customer_id, acquisition_channel, cohort_month from marts.customers "
        "where has_purchased",
    )
    assert sorted(predictions["customer_id"]) == sorted(customers["customer_id"])
    assert predictions["predicted_clv"].notna().all()
    assert predictions["p_alive"].between(0, 1).all()
    joined = customers.merge(predictions, on="customer_id")
    by_month = joined.groupby(["acquisition_channel", "cohort_month"])["predicted_clv"].sum()
    keys = ["acquisition_channel", "cohort_month"]
    frames = []
    for table in ("ltv_cac_by_channel_month", "predicted_value_by_channel_month"):
        frame = _frame(warehouse, f"select * from marts.{table}")
        frame["cohort_month"] = pd.to_datetime(frame["cohort_month"])
        frames.append(frame.set_index(keys).sort_index())
    cohorts, month = frames
    assert cohorts.index.equals(month.index)  # a row per cohort of the CAC mart
    acquired = month[month["acquired_customers"] > 0]
    expected = by_month.reindex(acquired.index)
    # the predictions are summed as decimals rounded to 1e-6 (exact, reproducible sums)
    np.testing.assert_allclose(acquired["predicted_clv"], expected, atol=1e-4)
    np.testing.assert_allclose(
        acquired["predicted_clv_per_customer"], expected / acquired["acquired_customers"], atol=1e-4
    )
    # margin so far (dbt's) plus the year predicted, per customer, against the cohort's CAC
    with_cac = acquired[acquired["cac"].notna()]
    assert len(with_cac) >= 10
    margin = cohorts.loc[with_cac.index, "gross_margin_to_date"]
    np.testing.assert_allclose(
        with_cac["predicted_value_to_cac"],
        (margin + expected.loc[with_cac.index]) / with_cac["acquired_customers"] / with_cac["cac"],
        rtol=1e-6,
    )
    assert month.loc[month["cac"].isna(), "predicted_value_to_cac"].isna().all()
    channel = _frame(warehouse, "select * from marts.predicted_value_by_channel").set_index(
        "acquisition_channel"
    )
    per_channel = joined.groupby("acquisition_channel")["predicted_clv"]
    np.testing.assert_allclose(
        channel["predicted_clv_per_customer"], per_channel.mean().reindex(channel.index), atol=1e-4
    )
    margin = cohorts.groupby("acquisition_channel")["gross_margin_to_date"].sum()
    paid = channel[channel["cac"].notna()]
    np.testing.assert_allclose(
        paid["predicted_value_to_cac"],
        (margin.reindex(paid.index) + per_channel.sum().reindex(paid.index))
        / paid["customers"]
        / paid["cac"],
        rtol=1e-6,
    )
    segments = _frame(warehouse, "select customer_id, segment from marts.customer_segments")
    summary = _frame(warehouse, "select * from marts.segment_summary").set_index("segment")
    mean_clv = segments.merge(predictions, on="customer_id").groupby("segment")["predicted_clv"]
    np.testing.assert_allclose(
        summary["average_predicted_clv"], mean_clv.mean().reindex(summary.index)
    )


def test_backtest_is_scored_and_beats_the_baseline(clean):
    _, result, warehouse = clean
    table = _frame(warehouse, "select * from marts.clv_backtest").set_index("model")
    assert (table["status"] == "scored").all()
    model, baseline = table.loc["bgnbd"], table.loc["historical_average"]
    actual = _query(
        warehouse,
        "select sum(holdout_purchases), count(holdout_purchases) "
        "from intermediate.int_customer_purchases_summarized",
    )[0]
    assert (model["actual_total"], model["customers"]) == (float(actual[0]), actual[1])
    assert model["mae"] < baseline["mae"]
    metadata = materialization_metadata(result, "marts/clv_backtest")
    assert metadata["bgnbd_mae"] == pytest.approx(model["mae"])
    assert metadata["historical_average_mae"] == pytest.approx(baseline["mae"])
    assert model["verdict"] == "ok" and model["verdict_reason"] == ""
    assert not model["is_backfill"]
    assert pd.isna(baseline["verdict"])
    checks = check_results(result)
    assert checks["backtest_within_accuracy_bars"] is True
    assert checks["backtest_fit_not_broken"] is True


def test_orders_on_one_day_are_one_purchase(workdir):
    """A split basket (two orders of a customer on one day, at one instant or hours apart) is
    one purchase: never a repeat purchase with recency 0, which the BG/NBD fit rejects (this
    broke the 100M-order benchmark), and the same count in the marts as in the model."""
    raw = workdir / "raw"
    (raw / "customers.csv").write_text(
        "customer_id,email,signup_date,acquisition_channel,country\n"
        "1,a@x.com,2025-01-01,email,US\n2,b@x.com,2025-01-01,email,US\n"
    )
    (raw / "orders.csv").write_text(
        "order_id,customer_id,ordered_at,status,amount,cost,currency\n"
        "1,1,2025-01-10T09:00:00Z,completed,30,10,USD\n"
        "2,1,2025-01-10T09:00:00Z,completed,20,10,USD\n"
        "3,1,2025-01-20T09:00:00Z,completed,40,10,USD\n"
        "4,1,2025-01-20T21:30:00Z,completed,4,1,USD\n"
        "5,2,2025-01-15T12:00:00Z,completed,10,5,USD\n"
        "6,2,2025-01-15T12:00:00Z,completed,15,5,USD\n"
    )
    (raw / "marketing_spend.csv").write_text("date,channel,spend\n2025-01-01,email,100\n")
    assert run_pipeline(as_of_date="2025-01-31").success
    rows = _query(
        workdir / "warehouse.duckdb",
        "select customer_id, frequency, recency_days, monetary_value "
        "from intermediate.int_customer_purchases_summarized order by 1",
    )
    # customer 1: purchases on the 10th (50) and the 20th (44); customer 2: one purchase
    assert rows == [(1, 1, 10, 44.0), (2, 0, 0, None)]
    purchases = _query(
        workdir / "warehouse.duckdb",
        "select customer_id, purchases, average_purchase_value from marts.customers order by 1",
    )
    assert purchases == [(1, 2, 47.0), (2, 1, 25.0)]
    # a backfill regroups the spells' months from the purchases: once, into a table
    assert _query(workdir / "warehouse.duckdb", _SPELLS_TYPE) == [("BASE TABLE",)]


_SPELLS_TYPE = (
    "select table_type from information_schema.tables "
    "where table_schema = 'intermediate' and table_name = 'int_customer_spells_classified'"
)


#: Purchase days of a hand-made shop whose spells end on the edges that month arithmetic gets
#: wrong (with churn_inactivity_days = 31 a customer is active through L + 31 and lapses on
#: L + 32): a next purchase in the lapse month on the day before, on and after the lapse day,
#: a lapse on as_of_date and one the day after it, Feb 29, year ends, a long gap, a customer
#: buying every month and one whose only purchase is on as_of_date (2025-06-15).
SPELL_EDGE_PURCHASES = {
    1: ["2024-01-31", "2024-03-02"],  # lapse day 03-03: next purchase the day before
    2: ["2024-01-31", "2024-03-03"],  # next purchase on the lapse day
    3: ["2024-01-31", "2024-03-04"],  # the day after: inactive on 03-03 only
    4: ["2024-02-29"],  # active at the start of April (31 days), churned in April
    5: ["2024-12-31", "2025-02-01"],  # across a year end, next purchase on the lapse day
    6: ["2025-01-10", "2025-05-14"],  # lapses on as_of_date: churned in the as-of month
    7: ["2025-05-15"],  # lapses the day after as_of_date: still active at its end
    8: ["2025-06-15", "2025-06-15"],  # two orders on as_of_date: one purchase, new
    9: [f"{y}-{m:02d}-15" for y, m in [(2024, k) for k in range(1, 13)] + [(2025, 1)]],
    10: ["2024-01-15", "2024-09-10", "2024-09-11"],  # reactivated after a long gap
    11: ["2024-06-30", "2024-07-31", "2024-08-31", "2024-10-01"],  # month ends, then a lapse
}


def _write_spell_edge_shop(raw: Path) -> None:
    raw.mkdir(parents=True)
    orders, customers = [], []
    for customer_id, days in SPELL_EDGE_PURCHASES.items():
        channel = "paid_search" if customer_id % 2 else "organic_search"
        customers.append((customer_id, f"c{customer_id}@example.com", days[0], channel, "US"))
        for day in days:
            orders.append((len(orders) + 1, customer_id, f"{day}T12:00:00Z", 10 + customer_id))
    pd.DataFrame(
        customers,
        columns=["customer_id", "email", "signup_date", "acquisition_channel", "country"],
    ).to_csv(raw / "customers.csv", index=False)
    frame = pd.DataFrame(orders, columns=["order_id", "customer_id", "ordered_at", "amount"])
    frame["status"], frame["cost"], frame["currency"] = "completed", "", "USD"
    frame[["order_id", "customer_id", "ordered_at", "status", "amount", "cost", "currency"]].to_csv(
        raw / "orders.csv", index=False
    )
    pd.DataFrame({"date": ["2024-01-01"], "channel": ["paid_search"], "spend": ["100.00"]}).to_csv(
        raw / "marketing_spend.csv", index=False
    )


@pytest.mark.parametrize("churn_days", [31, 60])
def test_spells_at_the_edges_match_the_reference_day_by_day(churn_days, tmp_path, monkeypatch):
    """Monthly churn counts, cohort activity, each customer's active months in the LTV window
    and the tenure life table, from the spells' month arithmetic, against the reference that
    decides every customer-month from the purchase days (tests/reference.py)."""
    import datetime as dt

    _write_spell_edge_shop(tmp_path / "raw")
    monkeypatch.setenv("LTV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LTV_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    selection = (
        dg.AssetSelection.keys(
            dg.AssetKey(["marts", "churn_monthly"]),
            dg.AssetKey(["marts", "cohort_activity"]),
            dg.AssetKey(["marts", "ltv_summary"]),
        )
        .upstream()
        .required_multi_asset_neighbors()
    )
    assert run_pipeline(selection, dbt_vars={"churn_inactivity_days": churn_days}).success
    warehouse = tmp_path / "warehouse.duckdb"
    ref = reference_marts(tmp_path / "raw", Params(churn_days=churn_days))
    as_of = ref["as_of"]
    assert as_of == dt.date(2025, 6, 15)

    assert _churn_and_cohorts_match(warehouse, ref) >= 4, "the shop is made to churn"
    assert _query(warehouse, _SPELLS_TYPE) == [("VIEW",)]  # its readers do its arithmetic

    # the reference's customer-months, decided day by day
    _, purchases, _, _ = load_reference(tmp_path / "raw", Params(churn_days=churn_days))
    months = customer_months(purchases, as_of, churn_days)
    window_start, window_end = dt.date(2024, 6, 1), dt.date(2025, 6, 1)
    in_window = months[
        (months["month_start"] >= window_start) & (months["month_start"] < window_end)
    ]
    want_active = (
        (in_window["active_start"] | (in_window["purchases"] > 0))
        .groupby(in_window["customer_id"])
        .sum()
        .reindex(list(SPELL_EDGE_PURCHASES), fill_value=0)
    )
    got_active = dict(
        _query(
            warehouse,
            "select customer_id, window_active_months "
            "from intermediate.int_customer_windows_aggregated",
        )
    )
    assert {k: int(v) for k, v in got_active.items()} == {
        int(k): int(v) for k, v in want_active.items()
    }

    complete = months[[m < window_end for m in months["month_start"]]]
    want_curve = complete.groupby("since").agg(
        active=("active_end", "sum"), churned=("churned", "sum")
    )
    got_curve = _query(
        warehouse,
        "select tenure_month, active_customers, churned_customers "
        "from intermediate.int_tenure_months_aggregated "
        "where dimension = 'overall' order by tenure_month",
    )
    assert got_curve == [(int(k), int(r.active), int(r.churned)) for k, r in want_curve.iterrows()]
