"""Paths: absolute, from one variable each, and the same file for Python and dbt."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ltv_pipeline import settings
from ltv_pipeline.dbt_server import SERVER_ENV


def test_defaults_live_under_the_repo_data_folder(monkeypatch):
    monkeypatch.delenv(settings.DUCKDB_ENV, raising=False)
    monkeypatch.delenv(settings.DATA_DIR_ENV, raising=False)
    assert settings.duckdb_path() == settings.REPO_ROOT / "data" / "warehouse.duckdb"
    assert settings.raw_dir() == settings.REPO_ROOT / "data" / "raw"


def test_relative_duckdb_path_is_refused(monkeypatch):
    monkeypatch.setenv(settings.DUCKDB_ENV, "warehouse.duckdb")
    with pytest.raises(ValueError, match="relative"):
        settings.duckdb_path()


def test_the_warehouse_is_duckdb_unless_spark_is_asked_for(monkeypatch):
    monkeypatch.delenv(settings.WAREHOUSE_ENV, raising=False)
    assert settings.warehouse() == "duckdb"
    monkeypatch.setenv(settings.WAREHOUSE_ENV, " spark ")
    assert settings.warehouse() == "spark"
    monkeypatch.setenv(settings.WAREHOUSE_ENV, "postgres")
    with pytest.raises(ValueError, match="LTV_WAREHOUSE='postgres'"):
        settings.warehouse()


def _dbt(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The dbt beside this Python on a copy of the project, output captured."""
    dbt = str(Path(sys.executable).with_name("dbt"))
    command = [dbt, *args, "--project-dir", str(project), "--profiles-dir", str(project)]
    return subprocess.run(command, capture_output=True, text=True, env=env)


def _dbt_warehouse_path(project_copy: Path, env: dict[str, str]) -> Path:
    """The warehouse path dbt's profile resolves to, printed by dbt itself."""
    args = ["compile", "--quiet", "--inline", "select '{{ target.path }}' as warehouse_path"]
    done = _dbt(project_copy, env, *args)
    assert done.returncode == 0, done.stdout
    out = done.stdout
    printed = next(line for line in out.splitlines() if "warehouse_path" in line)
    return Path(printed.split("'")[1]).resolve()


@pytest.mark.parametrize("from_env", [None, settings.DUCKDB_ENV, settings.DATA_DIR_ENV])
def test_dbt_profile_opens_the_same_file_as_python(tmp_path, monkeypatch, from_env):
    """dbt's default is <repo>/data/warehouse.duckdb too, found via DBT_PROJECT_DIR (which
    dagster-dbt always sets), never via the working directory; LTV_DATA_DIR alone moves it for
    both (it used to move only Spark's warehouse)."""
    copy = tmp_path / "repo" / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target"))
    (tmp_path / "repo" / "data").mkdir()
    unset = (settings.DUCKDB_ENV, settings.DATA_DIR_ENV)
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["DBT_PROJECT_DIR"] = str(copy)
    expected = tmp_path / "repo" / "data" / "warehouse.duckdb"
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    if from_env == settings.DUCKDB_ENV:
        expected = tmp_path / "elsewhere.duckdb"
        env[settings.DUCKDB_ENV] = str(expected)
        monkeypatch.setenv(settings.DUCKDB_ENV, str(expected))
    elif from_env == settings.DATA_DIR_ENV:
        expected = tmp_path / "data_dir" / "warehouse.duckdb"
        expected.parent.mkdir()
        env[settings.DATA_DIR_ENV] = str(tmp_path / "data_dir")
        monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path / "data_dir"))
    assert _dbt_warehouse_path(copy, env) == expected.resolve()
    if from_env is not None:  # Python's default is the repo's own data/, not the copy's
        assert settings.duckdb_path() == expected


def test_duckdb_limits_come_from_the_environment_and_are_checked(monkeypatch, tmp_path):
    for name in (settings.MEMORY_LIMIT_ENV, settings.THREADS_ENV, settings.TEMP_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    assert settings.duckdb_config() == {}
    monkeypatch.setenv(settings.MEMORY_LIMIT_ENV, "1.5GiB")
    monkeypatch.setenv(settings.THREADS_ENV, "1")
    monkeypatch.setenv(settings.TEMP_DIR_ENV, str(tmp_path / "spill"))
    config = settings.duckdb_config()
    assert config == {
        "memory_limit": "1.5GiB",
        "threads": 1,
        "temp_directory": str(tmp_path / "spill"),
    }
    from ltv_pipeline.warehouse.duckdb import DuckDBWarehouse

    with DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), **config).connect() as con:
        assert con.execute(
            "select current_setting('memory_limit'), current_setting('threads'), "
            "current_setting('temp_directory')"
        ).fetchone() == ("1.5 GiB", 1, str(tmp_path / "spill"))
    key = {
        settings.MEMORY_LIMIT_ENV: "memory_limit",
        settings.THREADS_ENV: "threads",
        settings.TEMP_DIR_ENV: "temp_directory",
    }
    for name, bad in (
        (settings.MEMORY_LIMIT_ENV, "6GB'; drop table x; --"),
        (settings.MEMORY_LIMIT_ENV, "lots"),
        (settings.THREADS_ENV, "0"),
        (settings.THREADS_ENV, "two"),
        (settings.TEMP_DIR_ENV, "spill"),
    ):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name):
            settings.duckdb_config()
        monkeypatch.setenv(name, str(config[key[name]]))  # good again for the next one


def _dbt_run_probe(copy: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return _dbt(copy, env, "run", "--select", "limits_probe")


def test_dbt_applies_the_same_duckdb_limits(tmp_path):
    """The on-run-start hook sets DuckDB's limits for the whole dbt run, and refuses a value
    that is not a limit before it reaches SQL."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target"))
    (copy / "models" / "limits_probe.sql").write_text(
        "{{ config(materialized='table') }} "
        "select current_setting('memory_limit') as memory_limit, "
        "current_setting('threads') as threads, "
        "current_setting('temp_directory') as temp_directory"
    )
    warehouse = tmp_path / "w.duckdb"
    env = {**os.environ, "DBT_PROJECT_DIR": str(copy), settings.DUCKDB_ENV: str(warehouse)}
    env.update(
        {
            settings.MEMORY_LIMIT_ENV: "700MiB",
            settings.THREADS_ENV: "1",
            settings.TEMP_DIR_ENV: str(tmp_path / "spill"),
        }
    )
    done = _dbt_run_probe(copy, env)
    assert done.returncode == 0, done.stdout
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select * from main.limits_probe").fetchone() == (
            "700.0 MiB",
            1,
            str(tmp_path / "spill"),
        )
    env[settings.MEMORY_LIMIT_ENV] = "1GB'; drop table x; --"
    refused = _dbt_run_probe(copy, env)
    assert refused.returncode != 0
    assert "LTV_DUCKDB_MEMORY_LIMIT" in refused.stdout


def _nodes(manifest: Path) -> dict:
    """The manifest's nodes and sources, without parse times."""
    import json

    parsed = json.loads(manifest.read_text())
    return {
        key: {k: v for k, v in node.items() if k != "created_at"}
        for section in ("nodes", "sources", "macros")
        for key, node in parsed[section].items()
    }


def test_dbt_parse_is_skipped_only_when_its_inputs_are_unchanged(tmp_path, monkeypatch):
    from ltv_pipeline import dbt_runner

    copy = tmp_path / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target"))
    monkeypatch.setattr(settings, "DBT_PROJECT_DIR", copy)
    monkeypatch.setenv(settings.DUCKDB_ENV, str(tmp_path / "w.duckdb"))
    assert dbt_runner.prepare() is True
    manifest = copy / "target" / "manifest.json"
    assert manifest.exists()
    assert dbt_runner.prepare() is False
    assert dbt_runner.prepare(force=True) is True
    # a changed model, a new file and a changed environment each make it parse again
    model = copy / "models" / "marts" / "customers.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    assert dbt_runner.prepare() is True
    assert dbt_runner.prepare() is False
    # what dbt writes (an invocation's compiled SQL, its log) is not what it parses
    invocation = copy / "target" / "dbt_models-1" / "compiled" / "ltv" / "models"
    invocation.mkdir(parents=True)
    (invocation / "customers.sql").write_text("select 1")
    (copy / "logs").mkdir(exist_ok=True)
    (copy / "logs" / "dbt.log").write_text("a run\n")
    assert dbt_runner.prepare() is False
    monkeypatch.setenv(settings.DUCKDB_ENV, str(tmp_path / "other.duckdb"))
    assert dbt_runner.prepare() is True
    # the file's name is the database of every relation; its folder is in no node
    assert '"database": "other"' in manifest.read_text()
    # a new shop folder with the same file name: the manifest dbt would write is the same
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(elsewhere))
    monkeypatch.setenv(settings.DUCKDB_ENV, str(elsewhere / "other.duckdb"))
    kept = _nodes(manifest)
    assert dbt_runner.prepare() is False
    # each run's dbt server has a socket of its own: where it is is no input either
    monkeypatch.setenv(SERVER_ENV, str(tmp_path / "ltv-dbt-x" / "s"))
    assert dbt_runner.prepare() is False
    monkeypatch.delenv(SERVER_ENV)
    # a parse from scratch (dbt's saved state would hold here: parse_state_without_folders)
    (copy / "target" / "partial_parse.msgpack").unlink()
    assert dbt_runner.prepare(force=True) is True
    assert _nodes(manifest) == kept
    assert str(elsewhere) not in manifest.read_text()
    (copy / "macros" / "extra.sql").write_text("{% macro extra() %}1{% endmacro %}\n")
    assert dbt_runner.prepare() is True
    # a failed parse leaves no stamp, so the next call parses again
    (copy / "models" / "marts" / "_broken.yml").write_text("models: [\n")
    with pytest.raises(SystemExit, match="dbt parse failed"):
        dbt_runner.prepare()
    (copy / "models" / "marts" / "_broken.yml").unlink()
    assert dbt_runner.prepare() is True


def test_a_parse_replaces_the_manifest_whole_while_others_read_it(tmp_path, monkeypatch):
    """A process loading the manifest while another parses finds the old one or the new one,
    never a part: a CI run failed on an empty ``manifest.json``, which dbt writes in place."""
    import json
    import threading

    from ltv_pipeline import dbt_runner

    copy = tmp_path / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target"))
    monkeypatch.setattr(settings, "DBT_PROJECT_DIR", copy)
    monkeypatch.setenv(settings.DUCKDB_ENV, str(tmp_path / "w.duckdb"))
    target = copy / "target"
    assert dbt_runner.prepare() is True
    manifest = target / "manifest.json"
    first = manifest.stat().st_ino
    failures: list[str] = []
    reads = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                json.loads(manifest.read_bytes())
                reads += 1
            except (ValueError, OSError) as error:
                failures.append(repr(error))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(2):
            assert dbt_runner.prepare(force=True) is True
    finally:
        stop.set()
        reader.join()
    assert failures == []
    assert reads > 10
    # a new file renamed over the old (dbt alone keeps the inode and truncates it)
    assert manifest.stat().st_ino != first
    assert not list(target.glob(".parse-*"))
    assert (target / "partial_parse.msgpack").exists()
    assert (target / dbt_runner.PARSE_STAMP).read_text() == dbt_runner.parse_inputs()
    assert dbt_runner.prepare() is False


def _parse(project: Path, warehouse: Path) -> str:
    """``dbt parse`` of ``project`` against ``warehouse``, through ``ltv-dbt``; its output."""
    from ltv_pipeline import dbt_runner

    env = {**dbt_runner.dbt_env(), settings.DUCKDB_ENV: str(warehouse)}
    command = [str(settings.dbt_executable()), "parse", "--project-dir", str(project)]
    command += ["--profiles-dir", str(project)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_dbts_parse_state_holds_in_another_folder_but_not_for_another_file_name(tmp_path):
    """A first run on a new shop's folder does not parse the project again (2.6-2.8 s); a
    warehouse file of another name does, since its name is the database of every relation."""
    assert settings.dbt_executable().name == "ltv-dbt"
    copy = tmp_path / "dbt_project"
    shutil.copytree(settings.DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target"))
    manifest = copy / "target" / "manifest.json"

    first = _parse(copy, tmp_path / "shop_a" / "warehouse.duckdb")
    assert "saved manifest not found" in first
    parsed_first = _nodes(manifest)

    moved = _parse(copy, tmp_path / "shop_b" / "warehouse.duckdb")
    assert "Unable to do partial parsing" not in moved
    assert _nodes(manifest) == parsed_first
    assert '"database": "warehouse"' in manifest.read_text()

    renamed = _parse(copy, tmp_path / "shop_b" / "shop.duckdb")
    assert "Unable to do partial parsing because profile has changed" in renamed
    assert '"database": "shop"' in manifest.read_text()
    assert '"database": "warehouse"' not in manifest.read_text()


def test_no_dbt_file_reads_the_warehouse_path():
    """dbt's saved parse state ignores the warehouse file's folder
    (``dbt_runner.parse_state_without_folders``): that holds while no model, macro, test or
    property file reads ``target.path``, which would put the folder into the parse."""
    import re

    from ltv_pipeline import dbt_runner

    reads_path = re.compile(r"target\s*(\.\s*path\b|\[\s*['\"]path|\.get\(\s*['\"]path)")
    project = settings.DBT_PROJECT_DIR
    files = dbt_runner.project_files(project)
    assert "models/marts/customers.sql" in files and "dbt_project.yml" in files
    readers = [
        name
        for name in files
        if name != "profiles.yml"
        and reads_path.search((project / name).read_text(errors="replace"))
    ]
    assert readers == []
    # the pattern finds the ways jinja reads it
    for text in ("{{ target.path }}", "{{ target['path'] }}", '{{ target.get("path") }}'):
        assert reads_path.search(text), text
    assert not reads_path.search("{{ target.name }} {{ target.type }}")
