"""Publishing the BI snapshot, and the pipeline's safety under failure.

The unit tests drive ``ltv_pipeline.publish`` on a small warehouse. The pipeline tests share
one generated shop with bad rows of every kind and run in file order: a first full run
publishes; a second run on the same input must publish identical marts while another process
keeps reading the snapshot; a run whose blocking check fails and a run killed with SIGKILL in
the middle of the dbt build must both leave the last good snapshot untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from ltv_pipeline import publish, settings
from ltv_pipeline.dbt_runner import run_dbt
from ltv_pipeline.definitions import defs
from ltv_pipeline.defs.dbt import table_keys
from ltv_pipeline.defs.schedules import all_assets_job
from ltv_pipeline.runs import summary
from ltv_pipeline.sample.generate import generate_shop
from ltv_pipeline.warehouse import last_good
from tests.helpers import failure_messages, materialized_keys, run_pipeline, table_rows

# ---------------------------------------------------------------------------------------------
# the publish module


def _warehouse(path: Path, customers: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        con.execute(
            "create or replace table marts.customers as select range as customer_id, "
            "range * 1.5 as net_revenue from range(?)",
            [customers],
        )
        con.execute("create or replace table marts.empty_mart (x integer)")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_publish_writes_a_snapshot_parquet_files_and_a_manifest(tmp_path):
    wh, out = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 1000)
    with duckdb.connect(str(wh)) as con:
        manifest = publish.publish(
            con, "marts", ["customers", "empty_mart"], out, run_id="r1", as_of_date="2026-01-31"
        )
    assert manifest.row_counts() == {"customers": 1000, "empty_mart": 0}
    # one version folder; the paths BI opens are fixed symlinks into `current`
    assert sorted(p.name for p in out.iterdir()) == [
        ".publish.lock",
        "current",
        "manifest.json",
        "marts.duckdb",
        "parquet",
        "versions",
    ]
    assert publish.versions(out) == [manifest.version]
    assert os.readlink(out / "current") == f"versions/{manifest.version}"
    for name in ("marts.duckdb", "parquet", "manifest.json"):
        assert os.readlink(out / name) == f"current/{name}"
    version = out / "versions" / manifest.version
    assert sorted(p.name for p in version.iterdir()) == ["manifest.json", "marts.duckdb", "parquet"]
    assert publish.read_manifest(out) == manifest
    for table in manifest.tables:
        parquet = out / table.parquet
        assert _sha(parquet) == table.parquet_sha256
        assert pq.read_metadata(parquet).num_rows == table.rows
    assert _sha(out / "marts.duckdb") == manifest.duckdb_sha256
    with duckdb.connect(str(out / "marts.duckdb"), read_only=True) as snap:
        assert snap.execute("select count(*) from marts.customers").fetchone() == (1000,)
        assert snap.execute("select count(*) from customers").fetchone() == (1000,)
        assert snap.execute(
            "select distinct run_id, as_of_date::varchar from _manifest"
        ).fetchall() == [("r1", "2026-01-31")]
        # the storage format BI drivers bundling DuckDB 1.2+ can open
        (tags,) = snap.execute(
            "select tags from duckdb_databases() where database_name = 'marts'"
        ).fetchone()
        assert tags["storage_version"].startswith("v1.2.0")


COUNT = (
    "import sys, duckdb; con = duckdb.connect(sys.argv[1], read_only=True); "
    "print(con.execute('select count(*) from customers').fetchone()[0])"
)


def test_a_reader_keeps_its_snapshot_while_a_new_one_is_swapped_in(tmp_path):
    wh, out = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 10)
    with duckdb.connect(str(wh)) as con:
        publish.publish(con, "marts", ["customers"], out, run_id="r1", as_of_date="2026-01-31")
    reader = duckdb.connect(str(out / "marts.duckdb"), read_only=True)
    try:
        _warehouse(wh, 20)
        with duckdb.connect(str(wh)) as con:
            publish.publish(con, "marts", ["customers"], out, run_id="r2", as_of_date="2026-02-28")
        # the open reader still sees its whole snapshot; a new one sees the new snapshot
        assert reader.execute("select count(*) from customers").fetchone() == (10,)
        assert reader.execute("select distinct run_id from _manifest").fetchall() == [("r1",)]
        # (another process: DuckDB shares one instance per path within a process)
        fresh = subprocess.run(
            [sys.executable, "-c", COUNT, str(out / "marts.duckdb")],
            capture_output=True,
            text=True,
            check=True,
        )
        assert fresh.stdout.strip() == "20"
    finally:
        reader.close()


def test_a_failed_publish_keeps_the_last_snapshot_and_leaves_no_temporary_files(tmp_path):
    wh, out = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 10)
    with duckdb.connect(str(wh)) as con:
        publish.publish(con, "marts", ["customers"], out, run_id="r1", as_of_date="2026-01-31")
    before = {p.relative_to(out): _sha(p) for p in out.rglob("*") if p.is_file()}
    _warehouse(wh, 20)
    with duckdb.connect(str(wh)) as con, pytest.raises(duckdb.CatalogException, match="missing"):
        publish.publish(
            con, "marts", ["customers", "missing"], out, run_id="r2", as_of_date="2026-02-28"
        )
    after = {p.relative_to(out): _sha(p) for p in out.rglob("*") if p.is_file()}
    assert after == before  # same files, same bytes: no temporary file left behind


def test_verify_finds_a_tampered_or_mixed_snapshot(tmp_path):
    wh, out = tmp_path / "wh.duckdb", tmp_path / "published"
    _warehouse(wh, 10)
    with duckdb.connect(str(wh)) as con:
        first = publish.publish(
            con, "marts", ["customers"], out, run_id="r1", as_of_date="2026-01-31"
        )
    assert publish.verify(out, first) == []
    parquet = out / "parquet" / "customers.parquet"
    parquet.write_bytes(parquet.read_bytes() + b"x")
    assert publish.verify(out, first) == [
        "parquet/customers.parquet: checksum differs from the manifest"
    ]
    with duckdb.connect(str(wh)) as con:
        second = publish.publish(
            con, "marts", ["customers"], out, run_id="r2", as_of_date="2026-01-31"
        )
    # the first run's manifest no longer describes what is published
    problems = publish.verify(out, first)
    assert any("written by ['r2']" in p for p in problems)
    assert publish.verify(out, second) == []


def test_table_names_are_quoted_never_pasted(tmp_path):
    wh, out = tmp_path / "wh.duckdb", tmp_path / "published"
    with duckdb.connect(str(wh)) as con:
        con.execute('create schema marts; create table marts."odd name; drop" as select 1 as x')
        manifest = publish.publish(
            con, "marts", ["odd name; drop"], out, run_id="r", as_of_date="2026-01-31"
        )
    assert manifest.row_counts() == {"odd name; drop": 1}


# ---------------------------------------------------------------------------------------------
# the pipeline

READER = r"""
import json, os, sys, time
import duckdb
path, stop, out = sys.argv[1:4]
reads, errors, runs = 0, [], []
while not os.path.exists(stop):
    try:
        with duckdb.connect(path, read_only=True) as con:
            manifest = con.execute("select run_id, table_name, row_count from _manifest").fetchall()
            ids = {run_id for run_id, _, _ in manifest}
            if len(ids) != 1:
                errors.append(f"manifest mixes runs {ids}")
            for _, table, expected in manifest:
                (got,) = con.execute(f'select count(*) from "{table}"').fetchone()
                if got != expected:
                    errors.append(f"{table}: {got} rows, manifest says {expected}")
            if not runs or runs[-1] != manifest[0][0]:
                runs.append(manifest[0][0])
            reads += 1
    except Exception as exc:
        errors.append(repr(exc))
    time.sleep(0.005)
with open(out, "w") as f:
    json.dump({"reads": reads, "errors": errors, "runs": runs}, f)
"""


#: The marts the Python assets write (documented as dbt sources) and their count columns.
PYTHON_MART_TABLES = {
    "customer_predictions",
    "predicted_value_by_channel",
    "predicted_value_by_channel_month",
    "clv_backtest",
    "customer_segments",
    "segment_summary",
    "customer_revenue_deciles",
    "cohort_retention",
    "cohort_retention_wide",
}
DBT_MART_TABLES = {
    "customers",
    "ltv_summary",
    "churn_monthly",
    "cac_monthly",
    "ltv_cac_by_channel",
    "ltv_cac_by_channel_month",
    "cohort_activity",
}
COUNT_COLUMNS = {"customers", "acquired_customers", "active_customers", "frequency", "decile"}
COUNT_COLUMNS |= {"holdout_days", "purchases", "window_purchases", "window_customers"}
COUNT_COLUMNS |= {"new_customers", "active_at_start", "active_at_end", "churned_customers"}
COUNT_COLUMNS |= {"reactivated_customers", "churn_events", "lifespan_customers", "cohorts"}
COUNT_COLUMNS |= {"cohorts_paid_back"}
MONEY_COLUMNS = {"net_revenue", "gross_margin", "spend", "window_net_revenue"}
MONEY_COLUMNS |= {"window_gross_margin", "gross_margin_to_date", "predicted_clv"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("published_shop")
    generate_shop(root / "raw", customers=600, seed=23, bad_share=0.03)
    env = {
        "LTV_DATA_DIR": str(root),
        "LTV_DUCKDB_PATH": str(root / "warehouse.duckdb"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        yield root, env


def _published(root: Path):
    return publish.read_manifest(root / "published")


def _files(root: Path) -> dict[str, str]:
    out = root / "published"
    return {str(p.relative_to(out)): _sha(p) for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(shop):
    result = run_pipeline()
    assert result.success, failure_messages(result)
    return result


def test_full_run_publishes_every_mart_without_pii(shop, first_run):
    root, _ = shop
    result = first_run
    assert "published_marts" in materialized_keys(result)
    manifest = _published(root)
    assert manifest.run_id == result.run_id
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        marts = {
            name
            for (name,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts'"
            ).fetchall()
        }
        assert set(manifest.row_counts()) == marts - {"fct_orders"}
        # published in key order: each declared key is unique in the warehouse, so the order
        # is total; the three per-customer marts (the large ones) have one
        keys = table_keys("marts")
        assert {
            t: keys.get(t) for t in ("customers", "customer_predictions", "customer_segments")
        } == {
            "customers": ["customer_id"],
            "customer_predictions": ["customer_id"],
            "customer_segments": ["customer_id"],
        }
        for table in manifest.tables:
            key = keys.get(table.name)
            order = ", ".join(key) if key else "all"
            want = con.execute(f"select * from marts.{table.name} order by {order}").fetchall()
            got = con.execute(
                "select * from read_parquet(?)", [str(root / "published" / table.parquet)]
            ).fetchall()
            assert table.rows == len(want) and got == want, table.name
            if key:
                (distinct,) = con.execute(
                    f"select count(distinct ({', '.join(key)},)) from marts.{table.name}"
                ).fetchone()
                assert distinct == table.rows, f"{table.name}: {key} is not unique"
        (emails,) = con.execute("select count(*) from raw.customers").fetchone()
        assert emails > 0
    # no PII: no email column, and no value that looks like an address, in any published file
    with duckdb.connect(str(root / "published" / "marts.duckdb"), read_only=True) as snap:
        columns = snap.execute(
            "select table_name, column_name, data_type from duckdb_columns() "
            "where database_name = 'marts' and schema_name = 'main'"
        ).fetchall()
        assert not [c for c in columns if "mail" in c[1].lower()]
        for table, column, data_type in columns:
            if data_type == "VARCHAR":
                (hits,) = snap.execute(
                    f'select count(*) from "{table}" where "{column}" like \'%@%\''
                ).fetchone()
                assert hits == 0, (table, column)
    # every mart, dbt's and Python's, in types BI tools read natively and the same for the
    # same column everywhere: no decimals (pandas reads Python Decimal objects) or HUGEINT,
    # no timestamps for days, counts BIGINT, money DOUBLE
    python_marts = {t.name for t in manifest.tables} & PYTHON_MART_TABLES
    assert python_marts == PYTHON_MART_TABLES
    types = {(t, c): d for t, c, d in columns if t != "_manifest"}
    assert {t for t, _ in types} >= python_marts | DBT_MART_TABLES
    assert not {k: d for k, d in types.items() if d.startswith(("DECIMAL", "HUGEINT", "TIMESTAMP"))}
    days = {
        k: d
        for k, d in types.items()
        if (k[1].endswith("_date") and not k[1].endswith("_to_date"))
        or k[1] in {"cohort_month", "month_start", "month_end"}
    }
    assert len(days) >= 20 and set(days.values()) == {"DATE"}, days
    counts = {k: types[k] for k in types if k[1] in COUNT_COLUMNS}
    assert len(counts) >= 25 and set(counts.values()) == {"BIGINT"}, counts
    # the types the Python marts' YAML gives (shown on their assets in the UI) are the real ones
    manifest = json.loads((settings.DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    documented = {
        (source["name"], column): spec["data_type"].upper()
        for source in manifest["sources"].values()
        if source["name"] in PYTHON_MART_TABLES
        for column, spec in source["columns"].items()
    }
    assert len(documented) >= 60
    assert {k: types.get(k) for k in documented} == documented
    money = {k: types[k] for k in types if k[1] in MONEY_COLUMNS}
    assert {t for t, _ in money} >= {"customers", "segment_summary", "cac_monthly", "ltv_summary"}
    assert set(money.values()) == {"DOUBLE"}, money
    # bad rows of every kind were quarantined and the marts still published
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        (kinds,) = con.execute(
            "select count(distinct (source_table, reason)) from raw.quarantine"
        ).fetchone()
    assert kinds >= 15


def test_every_table_asset_shows_its_columns_with_the_types_the_warehouse_has(shop, first_run):
    """The column schema on each asset in the UI (from the dbt YAML: models' data_type, the
    raw and Python tables' source entries) is complete and says what the warehouse holds."""
    graph = defs().resolve_asset_graph()
    with duckdb.connect(str(shop[0] / "warehouse.duckdb"), read_only=True) as con:
        actual = {
            (s, t, c): d.lower()
            for s, t, c, d in con.execute(
                "select schema_name, table_name, column_name, data_type from duckdb_columns() "
                "where database_name = 'warehouse'"
            ).fetchall()
        }
    checked, wrong = 0, []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable or key.to_user_string() == "published_marts":
            continue
        schema = node.metadata["dagster/column_schema"]
        schema_name, table = key.path[0], key.path[-1]
        held = {c for (s, t, c) in actual if (s, t) == (schema_name, table)}
        shown = {column.name for column in schema.columns}
        # the wide retention table has a column per month observed (m0, m1, ...): m0 is shown
        assert shown <= held if table == "cohort_retention_wide" else shown == held, key
        for column in schema.columns:
            checked += 1
            want = actual[(schema_name, table, column.name)].replace(" ", "")
            if column.type.lower().replace(" ", "") != want:
                wrong.append((key.to_user_string(), column.name, column.type, want))
    assert checked >= 300 and not wrong, wrong


def test_every_asset_reports_rows_and_marts_their_key_figures(shop, first_run):
    result = first_run
    metadata = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            metadata[materialization.asset_key.to_user_string()] = materialization.metadata
    graph = defs().resolve_asset_graph()
    assert set(metadata) == {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }
    without_rows = [key for key, md in metadata.items() if "dagster/row_count" not in md]
    assert not without_rows
    (overall,) = table_rows(metadata["marts/ltv_summary"]["overall"].value)
    # a 600-customer shop cannot show its lifespan: the figure says why instead of a number
    assert overall["is_reliable"] is False and overall["historical_ltv"] == "n/a"
    assert overall["unreliable_reason"] and overall["months_observed"] == 24
    channels = table_rows(metadata["marts/ltv_cac_by_channel"]["ltv_to_cac_by_channel"].value)
    assert len(channels) == 6
    # shown as a person reads them, from the marts' values: rounded, with the unit
    with duckdb.connect(str(shop[0] / "warehouse.duckdb"), read_only=True) as con:
        (ratio,) = con.execute(
            "select ltv_to_cac from marts.ltv_cac_by_channel order by acquisition_channel limit 1"
        ).fetchone()
        (churn,) = con.execute(
            "select churn_rate from marts.churn_monthly where is_complete_month "
            "order by month_start desc limit 1"
        ).fetchone()
    assert channels[0]["ltv_to_cac"] == ("n/a" if ratio is None else f"{ratio:.2f}x")
    (month,) = table_rows(metadata["marts/churn_monthly"]["last_complete_month"].value)
    assert month["churn_rate"] == f"{churn:.1%}" and 0 < churn < 1
    assert metadata["marts/clv_backtest"]["bgnbd_mae"].value > 0
    scores = {
        row["model"]: row for row in table_rows(metadata["marts/clv_backtest"]["scores"].value)
    }
    assert set(scores) == {"bgnbd", "historical_average"}
    assert scores["bgnbd"]["mae"].endswith(" purchases")  # MAE of holdout purchases, not money
    fitted = table_rows(metadata["marts/customer_predictions"]["fitted_parameters"].value)
    assert {row["parameter"] for row in fitted} >= {"bgnbd_r", "bgnbd_alpha", "bgnbd_a", "bgnbd_b"}
    assert all(row["meaning"] for row in fitted)  # each parameter says what it is
    # the charts, inline in the UI and as files in the reports folder
    charts = {
        "marts/predicted_value_by_channel": ("ltv_to_cac_chart", "ltv_to_cac_by_channel.png"),
        "marts/clv_backtest": ("backtest_chart", "clv_backtest.png"),
        "marts/segment_summary": ("chart", "segment_summary.png"),
        "marts/cohort_retention": ("heatmap", "cohort_retention_heatmap.png"),
    }
    for key, (label, name) in charts.items():
        assert metadata[key][label].value.startswith("![") and "data:image/png;base64," in (
            metadata[key][label].value
        ), key
        assert (shop[0] / "reports" / name).read_bytes()[:4] == b"\x89PNG", name


def test_same_input_gives_identical_published_marts_while_a_reader_reads(shop, first_run, tmp_path):
    root, _ = shop
    before = _published(root)
    stop, out = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(root / "published" / "marts.duckdb"), str(stop), out]
    )
    try:
        time.sleep(1.0)
        result = run_pipeline()
        time.sleep(1.0)
    finally:
        stop.touch()
        reader.wait(timeout=60)
    assert result.success
    seen = json.loads(out.read_text())
    assert seen["errors"] == []
    assert seen["reads"] > 20
    assert seen["runs"] == [before.run_id, result.run_id]  # the old snapshot, then the new
    after = _published(root)
    assert after.run_id == result.run_id != before.run_id
    parquet = {t.name: t.parquet_sha256 for t in after.tables}
    assert parquet == {t.name: t.parquet_sha256 for t in before.tables}


def test_a_failing_blocking_check_stops_publishing(shop):
    root, _ = shop
    before = _files(root)
    # a nightly fit "worse than 0x the naive forecast" is broken: the blocking check fails
    result = run_pipeline(op_config={"marts__clv_backtest": {"config": {"max_mae_vs_naive": 0.0}}})
    assert not result.success
    assert "backtest_fit_not_broken" in failure_messages(result)
    assert "published_marts" not in materialized_keys(result)
    assert _files(root) == before


def _dbt_build_running(parent: int) -> bool:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if os.getpgid(int(proc.name)) != parent:
                continue
        except (OSError, ProcessLookupError):
            continue
        if any(part.endswith(b"dbt") for part in cmdline) and b"build" in cmdline:
            return True
    return False


def test_a_run_killed_during_the_dbt_build_leaves_the_snapshot_and_the_next_run_works(
    shop, first_run, tmp_path
):
    """After a published night (``first_run``), so that there is a last good night to keep."""
    root, env = shop
    before = _files(root)
    manifest = _published(root)
    run = subprocess.Popen(
        [str(Path(sys.executable).with_name("ltv")), "run"],
        env={**os.environ, **env, "DAGSTER_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not _dbt_build_running(run.pid):
            assert run.poll() is None, "the run ended before dbt started"
            assert time.monotonic() < deadline, "dbt build never started"
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the build
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == -signal.SIGKILL
    assert _files(root) == before
    assert _published(root) == manifest
    # no manual clean-up: the next `ltv run` takes the warehouse and publishes; both runs are
    # in the run history under the job the schedule and the UI's job page launch, all_assets
    again = subprocess.run(
        [str(Path(sys.executable).with_name("ltv")), "run"],
        env={**os.environ, **env, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        history = instance.get_runs(filters=dg.RunsFilter(job_name=all_assets_job.name))
        assert len(instance.get_runs()) == 2
    assert [run.status for run in history] == [
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.STARTED,
    ]
    assert _published(root).run_id == history[0].run_id
    # it kept the last good night while it started, before its run began (runs.
    # begin_night_early), and its raw load reports putting back the night the killed run began
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        started = instance.get_run_record_by_id(history[0].run_id).start_time
        orders = instance.get_latest_materialization_event(dg.AssetKey(["raw", "orders"]))
    assert last_good.good_copy(root / "warehouse.duckdb").stat().st_mtime < started
    assert orders.asset_materialization.metadata["restored_last_good_night"].value is True
    # ... and on the job's own page: the UI lists a job's runs by its name and the tag of its
    # repository in the code location workspace.yaml names
    workspace = yaml.safe_load((settings.REPO_ROOT / "workspace.yaml").read_text())
    location = workspace["load_from"][0]["python_module"]["location_name"]
    label = f"__repository__@{location}"
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        listed = instance.get_runs(
            filters=dg.RunsFilter(job_name=all_assets_job.name, tags={".dagster/repository": label})
        )
    assert [run.run_id for run in listed] == [run.run_id for run in history]


def test_a_malformed_file_fails_clearly_and_keeps_the_snapshot(shop):
    root, _ = shop
    before = _files(root)
    orders = root / "raw" / "orders.csv"
    original = orders.read_bytes()
    try:
        orders.write_text("order_id,customer,ordered_at\n1,2,2026-01-01\n")
        result = run_pipeline(dg.AssetSelection.all())
    finally:
        orders.write_bytes(original)
    assert not result.success
    message = failure_messages(result)
    assert "orders.csv" in message and "header" in message.lower()
    assert _files(root) == before


def test_dbt_docs_build_from_the_warehouse(first_run, tmp_path):
    """What `make docs` runs: the catalog lists every mart with its documented columns; the
    static page holds manifest and catalog inline (it opens from disk: index.html alone
    hangs at "loading" from file://) with the project's own overview and the Python marts."""
    assert run_dbt(["docs", "generate", "--static", "--target-path", str(tmp_path)]) == 0
    page = (tmp_path / "static_index.html").read_text()
    assert "ltv-pipeline: customer lifetime value, churn and CAC" in page  # overview.md
    # the Python marts are in the lineage: sources read by the exposure that shows them
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    python_marts = {
        "source.ltv.analytics.customer_segments",
        "source.ltv.clv.customer_predictions",
        "source.ltv.clv.clv_backtest",
    }
    report = manifest["exposures"]["exposure.ltv.customer_value_report"]
    assert python_marts <= set(report["depends_on"]["nodes"])
    assert all(f'"{unique_id}"' in page for unique_id in python_marts)
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    customers = catalog["nodes"]["model.ltv.customers"]["columns"]
    assert "historical_ltv" in {name.lower() for name in customers}
    assert "email" not in {name.lower() for name in customers}


def test_run_summary_reports_the_run(shop, first_run):
    """What `make run` prints at the end, read back from the warehouse."""
    root, _ = shop
    figures = summary()
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        (buyers,) = con.execute(
            "select count(*) from marts.customers where has_purchased"
        ).fetchone()
        (held,) = con.execute("select count(*) from raw.quarantine").fetchone()
    assert figures["purchasing_customers"] == buyers > 0
    assert figures["rows_quarantined"] == held > 0
    assert figures["predicted_clv_12m"] > 0 and figures["baseline_mae"] > figures["backtest_mae"]
    assert Path(figures["published"]) == root / "published" / "marts.duckdb"
    assert Path(figures["published"]).exists()
