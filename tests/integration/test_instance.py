"""The instance ``ltv run`` records into: Dagster's SQLite files, written with open connections.

What the pooled event log writes must be what Dagster's own storage reads (the UI of a
``DAGSTER_HOME`` without our ``dagster.yaml`` reads the same files), for a real run of a job
with an asset and a check, across more runs than it keeps databases open.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from ltv_pipeline import instance as ltv_instance


@dg.asset
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 3})


@dg.asset_check(asset=numbers)
def numbers_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"checked": 3})


JOB = dg.define_asset_job("numbers_job", selection=[numbers])
DEFS = dg.Definitions(assets=[numbers], asset_checks=[numbers_positive], jobs=[JOB])


def test_the_config_is_written_only_where_there_is_none(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert ltv_instance.ensure_instance_config() is None
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    written = ltv_instance.ensure_instance_config()
    assert written == home / "dagster.yaml"
    text = written.read_text()
    assert "class: PooledSqliteEventLogStorage" in text
    assert f'base_dir: "{home.resolve()}/history/runs"' in text
    written.write_text("")  # an empty file (what `make ui` used to touch) is the defaults
    assert ltv_instance.ensure_instance_config() == written
    assert "PooledSqliteEventLogStorage" in written.read_text()
    written.write_text("telemetry:\n  enabled: false\n")  # the user's own: left alone
    assert ltv_instance.ensure_instance_config() is None
    assert written.read_text() == "telemetry:\n  enabled: false\n"


def test_runs_recorded_through_open_connections_read_back_in_dagster_s_own_storage(
    tmp_path, monkeypatch
):
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    ltv_instance.ensure_instance_config()
    runs = ltv_instance.OPEN_DATABASES + 3  # more run databases than it keeps open
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert type(storage) is ltv_instance.PooledSqliteEventLogStorage
        job = DEFS.resolve_job_def("numbers_job")
        results = [job.execute_in_process(instance=instance) for _ in range(runs)]
        assert all(r.success for r in results)
        assert storage.open_databases == ltv_instance.OPEN_DATABASES  # the bound
        written = {
            r.run_id: [e.dagster_event_type for e in instance.all_logs(r.run_id)] for r in results
        }
    # Dagster's own class on the same folder, as a UI with the default dagster.yaml would read
    plain = SqliteEventLogStorage(str(Path(home) / "history" / "runs"))
    try:
        assert sorted(plain.get_all_run_ids()) == sorted(written)
        for run_id, types in written.items():
            read = [e.dagster_event_type for e in plain.get_logs_for_run(run_id)]
            assert read == types
            assert dg.DagsterEventType.ASSET_MATERIALIZATION in read
            assert dg.DagsterEventType.ASSET_CHECK_EVALUATION in read
        # the cross-run index: the newest materialization and every check execution
        record = plain.get_latest_materialization_events([dg.AssetKey("numbers")])
        latest = record[dg.AssetKey("numbers")]
        assert latest.run_id == results[-1].run_id
        assert latest.asset_materialization.metadata["dagster/row_count"].value == 3
        check = dg.AssetCheckKey(dg.AssetKey("numbers"), "numbers_positive")
        executions = plain.get_asset_check_execution_history(check, limit=100)
        assert {e.run_id for e in executions} == set(written)
    finally:
        plain.dispose()
