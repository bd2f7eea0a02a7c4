"""Backfills are one command (`ltv run --as-of`), and accuracy gates that warn, end to end.

One generated shop (600 customers, July 2024 to June 2026) goes through, in order: a backfill
with `ltv run --as-of`, a dbt-only rebuild at another date (stale warning, publishing refused),
a nightly run with a tightened accuracy bar (publishes with a WARN), a backfill whose fit is
"broken" on accuracy alone (publishes), and a collapse against seeded recent nights (blocks).
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ltv_pipeline import cli, publish, runs, settings
from ltv_pipeline.definitions import defs
from ltv_pipeline.defs.clv import BACKTEST, HISTORY_SCHEMA, HISTORY_TABLE
from ltv_pipeline.defs.dbt import dbt_models
from ltv_pipeline.defs.publish import PUBLISHED
from ltv_pipeline.sample.generate import generate_shop
from tests.helpers import check_evaluations, failure_messages, materialized_keys, run_pipeline

AS_OF = "2026-03-31"
#: The Python marts this change stamps; segments get theirs separately.
STAMPED = (
    "customer_predictions",
    "predicted_value_by_channel",
    "predicted_value_by_channel_month",
    "clv_backtest",
    "cohort_retention",
    "cohort_retention_wide",
    "customer_revenue_deciles",
)
BACKTEST_CONFIG = "marts__clv_backtest"


def _query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _as_of_dates(warehouse: Path) -> dict[str, list[date]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            name: [
                d
                for (d,) in con.execute(f"select distinct as_of_date from marts.{name}").fetchall()
            ]
            for name in STAMPED
        }


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The shop, with LTV_DATA_DIR / LTV_DUCKDB_PATH pointing at it for the whole module."""
    root = tmp_path_factory.mktemp("backfill")
    generate_shop(root / "raw", customers=600, seed=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTV_DATA_DIR", str(root))
        mp.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
        mp.delenv("DAGSTER_HOME", raising=False)  # an ephemeral instance, not the repo's
        yield root


@pytest.fixture(scope="module")
def backfilled(shop):
    """`ltv run --as-of 2026-03-31`, in-process."""
    return shop, cli.main(["run", "--as-of", AS_OF])


def test_as_of_must_be_a_past_iso_date(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["run", "--as-of", "2026-01-31"]).as_of == date(2026, 1, 31)
    assert parser.parse_args(["run"]).as_of is None
    for bad in ("2026-02-30", "31.01.2026", "20260131", "9999-01-01"):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "--as-of", bad])
        assert "--as-of" in capsys.readouterr().err


def test_the_python_marts_list_is_every_python_asset_in_marts():
    python_marts = {
        key.path[-1]
        for asset in defs().assets
        if isinstance(asset, dg.AssetsDefinition) and asset is not dbt_models
        for key in asset.keys
        if key.path[0] == "marts"
    }
    assert set(runs.PYTHON_MARTS) == python_marts


def test_ltv_run_as_of_rebuilds_every_asset_and_publishes_that_date(backfilled):
    root, returncode = backfilled
    assert returncode == 0
    warehouse = root / "warehouse.duckdb"
    # the data goes on after the as-of date, so ignoring what follows it is tested
    (last_raw,) = _query(warehouse, "select max(ordered_at) from raw.orders")[0]
    assert last_raw.date() > date.fromisoformat(AS_OF)
    assert _as_of_dates(warehouse) == {name: [date.fromisoformat(AS_OF)] for name in STAMPED}
    (last_order,) = _query(warehouse, "select max(last_order_date) from marts.customers")[0]
    assert last_order <= date.fromisoformat(AS_OF)
    # (fct_orders, order-level and not published, keeps every order; the marts filter it)
    (last_month,) = _query(warehouse, "select max(month_start) from marts.churn_monthly")[0]
    assert last_month <= date.fromisoformat(AS_OF)
    manifest = publish.read_manifest(root / "published")
    assert manifest is not None and manifest.as_of_date == AS_OF
    published = _query(
        root / "published" / "marts.duckdb",
        "select distinct cast(as_of_date as varchar) from _manifest",
    )
    assert published == [(AS_OF,)]
    # the backtest knows it was a backfill, and the night is in the history
    verdicts = _query(
        warehouse, "select verdict, is_backfill from marts.clv_backtest where model = 'bgnbd'"
    )
    assert verdicts[0][0] in ("ok", "less_accurate") and verdicts[0][1] is True
    history = _query(
        warehouse, f"select as_of_date, is_backfill from {HISTORY_SCHEMA}.{HISTORY_TABLE}"
    )
    assert history == [(date.fromisoformat(AS_OF), True)]
    assert runs.stale_marts_warning() is None  # every mart agrees with dbt


def test_dbt_build_at_another_date_warns_that_the_python_marts_are_stale(backfilled, capsys):
    root, _ = backfilled
    other = "2026-05-31"
    assert cli.main(["dbt", "build", "--vars", f"{{as_of_date: {other}}}"]) == 0
    err = capsys.readouterr().err
    assert f"dbt built the marts as of {other}" in err
    assert f"still describe {AS_OF}" in err
    for name in STAMPED:
        assert f"marts.{name}  (as_of_date {AS_OF})" in err
    # no dbt mart is built from a Python mart (one dbt step a run): none is stale with them
    manifest = json.loads((settings.DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    python_sources = {k for k in manifest["sources"] if k.split(".")[2] in ("clv", "analytics")}
    assert len(python_sources) == len(runs.PYTHON_MARTS)
    readers = [
        node["name"]
        for node in manifest["nodes"].values()
        if set(node.get("depends_on", {}).get("nodes", [])) & python_sources
    ]
    assert readers == []
    assert "marts.ltv_cac_by_channel " not in err and "is stale too" not in err
    assert f"ltv run --as-of {other}" in err
    # the mixed warehouse is not published under either date
    before = publish.read_manifest(root / "published")
    result = run_pipeline(dg.AssetSelection.assets(PUBLISHED))
    assert not result.success
    message = failure_messages(result)
    assert "describe another day" in message and "marts.customer_predictions" in message
    assert publish.read_manifest(root / "published") == before


def test_a_less_accurate_nightly_run_publishes_with_a_warning(backfilled):
    root, _ = backfilled
    # a bar no model meets: the aggregate error (whatever it is) is beyond ±0%
    result = run_pipeline(op_config={BACKTEST_CONFIG: {"config": {"max_aggregate_error_pct": 0.0}}})
    assert result.success, failure_messages(result)
    assert "published_marts" in materialized_keys(result)
    evaluations = check_evaluations(result)
    bars = evaluations["backtest_within_accuracy_bars"]
    assert not bars.passed and bars.severity == dg.AssetCheckSeverity.WARN
    assert bars.description.startswith("less_accurate: aggregate error")
    assert evaluations["backtest_fit_not_broken"].passed
    warehouse = root / "warehouse.duckdb"
    verdict, reason, error, backfill = _query(
        warehouse,
        "select verdict, verdict_reason, aggregate_error_pct, is_backfill "
        "from marts.clv_backtest where model = 'bgnbd'",
    )[0]
    assert (verdict, backfill) == ("less_accurate", False)
    assert reason == f"aggregate error {error:+.2f}% beyond ±0%"
    manifest = publish.read_manifest(root / "published")
    assert manifest.run_id == result.run_id
    # a nightly run is as of the last order date again, every Python mart with it
    (as_of,) = _query(warehouse, "select as_of_date from intermediate.int_reporting_window")[0]
    assert manifest.as_of_date == str(as_of) == "2026-06-30"
    assert _as_of_dates(warehouse) == {name: [as_of] for name in STAMPED}
    print(f"nightly backtest on the 600-customer shop: aggregate error {error:+.2f}%")


def test_a_backfill_broken_on_accuracy_alone_still_publishes(backfilled):
    root, _ = backfilled
    result = run_pipeline(
        as_of_date=AS_OF, op_config={BACKTEST_CONFIG: {"config": {"max_mae_vs_naive": 0.0}}}
    )
    assert result.success, failure_messages(result)
    broken = check_evaluations(result)["backtest_fit_not_broken"]
    assert not broken.passed and broken.severity == dg.AssetCheckSeverity.WARN
    assert "backfill" in broken.description and "naive" in broken.description
    manifest = publish.read_manifest(root / "published")
    assert (manifest.run_id, manifest.as_of_date) == (result.run_id, AS_OF)


def test_a_collapse_against_the_recent_nights_blocks(backfilled):
    root, _ = backfilled
    warehouse = root / "warehouse.duckdb"
    table = f"{HISTORY_SCHEMA}.{HISTORY_TABLE}"
    with duckdb.connect(str(warehouse)) as con:
        (mae, holdout_days) = con.execute(
            "select mae, holdout_days from marts.clv_backtest where model = 'bgnbd'"
        ).fetchone()
        history = con.execute(f"select * from {table}").df()
        # three earlier nights that scored a tenth of tonight's MAE
        nights = pd.DataFrame(
            {
                "run_id": ["n1", "n2", "n3"],
                "recorded_at": pd.to_datetime(["2026-06-01", "2026-06-02", "2026-06-03"]),
                "holdout_days": holdout_days,
                "is_backfill": False,
                "status": "scored",
                "mae": mae / 10,
            }
        )
        seeded = pd.concat([history, nights], ignore_index=True)  # noqa: F841 - read by name
        con.execute(f"create or replace table {table} as select * from seeded")
    result = run_pipeline(dg.AssetSelection.assets(BACKTEST))
    assert not result.success
    broken = check_evaluations(result)["backtest_fit_not_broken"]
    assert not broken.passed and broken.severity == dg.AssetCheckSeverity.ERROR
    # the seeded nights and the nightly run above (the backfills do not count)
    assert "the median" in broken.description and "of the last 4 nights" in broken.description
    rows = _query(warehouse, f"select count(*) from {table}")
    assert rows == [(len(history) + 4,)]  # the collapsed night is recorded too
    assert not math.isnan(mae)
