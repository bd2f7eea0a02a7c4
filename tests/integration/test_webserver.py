"""The nightly schedule, and the real webserver serving every asset, check and the schedule."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ltv_pipeline import settings
from ltv_pipeline.definitions import defs
from ltv_pipeline.defs.schedules import (
    DEFAULT_SCHEDULE_CRON,
    SCHEDULE_CRON_ENV,
    all_assets_job,
    nightly_schedule,
)

SCHEDULE_NAME = f"{all_assets_job.name}_schedule"
CUSTOM_CRON = "30 3 * * *"
STARTUP_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } }
      }
    }
    ... on PythonError { message }
  }
}
"""

ASSETS_QUERY = """
{
  assetNodes {
    assetKey { path }
    isMaterializable
    groupName
    dependencyKeys { path }
    internalFreshnessPolicy {
      ... on TimeWindowFreshnessPolicy { failWindowSeconds warnWindowSeconds }
    }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name description } }
      ... on Error { message }
    }
  }
}
"""

SCHEDULES_QUERY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        schedules {
          name
          pipelineName
          cronSchedule
          executionTimezone
          defaultStatus
          scheduleState { status }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


# --- the schedule definition --------------------------------------------------------------------


def test_default_schedule_is_nightly_utc_running_over_all_assets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SCHEDULE_CRON_ENV, raising=False)
    schedule = defs().resolve_schedule_def(SCHEDULE_NAME)
    assert schedule.cron_schedule == DEFAULT_SCHEDULE_CRON == "0 2 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == all_assets_job.name


def test_schedule_cron_comes_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCHEDULE_CRON_ENV, f"  {CUSTOM_CRON} ")
    assert nightly_schedule().cron_schedule == CUSTOM_CRON
    monkeypatch.setenv(SCHEDULE_CRON_ENV, "")
    assert nightly_schedule().cron_schedule == DEFAULT_SCHEDULE_CRON


@pytest.mark.parametrize(
    "cron", ["nightly", "0 2 * *", "0 0 2 * * *", "61 2 * * *", "0 25 * * *", "0 0 30 2 *"]
)
def test_invalid_schedule_cron_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, cron: str
) -> None:
    monkeypatch.setenv(SCHEDULE_CRON_ENV, cron)
    with pytest.raises(ValueError, match=SCHEDULE_CRON_ENV):
        nightly_schedule()
    with pytest.raises(ValueError, match=SCHEDULE_CRON_ENV):
        defs()


# --- the real webserver ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a recycled group id owned by someone else: not ours any more
        return False
    return True


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's whole group (webserver and its code server), SIGKILL if it lingers."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and (proc.poll() is None or _group_alive(pgid)):
        time.sleep(0.2)
    if proc.poll() is None or _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    proc.wait(timeout=STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.1)
    assert not _group_alive(pgid), f"processes of group {pgid} survived SIGKILL"


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@contextlib.contextmanager
def running_webserver(workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """The real ``dagster-webserver`` on a free loopback port: yields its URL, then stops it."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    webserver = Path(sys.executable).with_name("dagster-webserver")
    workspace = settings.REPO_ROOT / "workspace.yaml"
    stdout, stderr = workdir / "webserver.out", workdir / "webserver.err"
    cmd = [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=settings.REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"dagster-webserver exited with {proc.returncode} before it was ready:\n"
                    f"{_tail(stderr)}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"dagster-webserver not ready after {STARTUP_TIMEOUT_S}s:\n{_tail(stderr)}"
                )
            time.sleep(0.5)
        yield base_url
    finally:
        _stop(proc)
    assert not _port_open(port), f"port {port} still accepts connections after the stop"


def _graphql(base_url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert not body.get("errors"), body["errors"]
    return body["data"]


def test_webserver_serves_assets_checks_and_schedule(workdir: Path) -> None:
    expected_graph = defs().resolve_asset_graph()
    expected_assets = {key.to_user_string() for key in expected_graph.materializable_asset_keys}
    expected_checks = {
        (key.asset_key.to_user_string(), key.name) for key in expected_graph.asset_check_keys
    }
    assert len(expected_assets) > 20 and len(expected_checks) > 50  # the dbt project was loaded
    assert {key.split("/")[0] for key in expected_assets} >= {
        "raw",
        "staging",
        "intermediate",
        "marts",
    }

    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_WEBSERVER_")}
    env |= {
        "DAGSTER_HOME": str(dagster_home),
        settings.DATA_DIR_ENV: str(workdir),
        settings.DUCKDB_ENV: str(workdir / "warehouse.duckdb"),
        SCHEDULE_CRON_ENV: CUSTOM_CRON,
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }

    with running_webserver(workdir, env) as base_url:
        workspace = _graphql(base_url, WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        for entry in workspace["locationEntries"]:
            location = entry["locationOrLoadError"]
            assert location["__typename"] == "RepositoryLocation", location
            assert entry["loadStatus"] == "LOADED", entry

        nodes = _graphql(base_url, ASSETS_QUERY)["assetNodes"]
        served_assets = {"/".join(node["assetKey"]["path"]) for node in nodes}
        assert served_assets == expected_assets
        assert all(node["isMaterializable"] for node in nodes)
        served_checks = set()
        for node in nodes:
            checks = node["assetChecksOrError"]
            assert checks["__typename"] == "AssetChecks", checks
            asset = "/".join(node["assetKey"]["path"])
            served_checks |= {(asset, check["name"]) for check in checks["checks"]}
        assert served_checks == expected_checks
        # every check says what it checks, dbt's tests included (the UI said "No description")
        undescribed = [
            check["name"]
            for node in nodes
            for check in node["assetChecksOrError"]["checks"]
            if not (check["description"] or "").strip()
        ]
        assert undescribed == []
        # the group graph runs one way, left to right: each asset's group is its schema, and
        # no asset depends on one of a later group (the predictions feed marts built after
        # them within the marts group; they used to send the lineage back into staging)
        order = ["raw", "staging", "intermediate", "marts", "published"]
        groups = {"/".join(node["assetKey"]["path"]): node["groupName"] for node in nodes}
        assert set(groups.values()) == set(order)
        assert all(groups[key] == key.split("/")[0] for key in groups if "/" in key)
        assert groups["published_marts"] == "published"
        backwards = [
            (dep, key)
            for node in nodes
            for key in ["/".join(node["assetKey"]["path"])]
            for dep in ("/".join(d["path"]) for d in node["dependencyKeys"])
            if order.index(groups[dep]) > order.index(groups[key])
        ]
        assert backwards == []
        # the published snapshot is late after 26 h, overdue after 48 h (one missed night)
        by_key = {"/".join(node["assetKey"]["path"]): node for node in nodes}
        assert by_key["published_marts"]["internalFreshnessPolicy"] == {
            "failWindowSeconds": 48 * 3600,
            "warnWindowSeconds": 26 * 3600,
        }

        repositories = _graphql(base_url, SCHEDULES_QUERY)["repositoriesOrError"]
        assert repositories["__typename"] == "RepositoryConnection", repositories
        schedules = {
            schedule["name"]: schedule
            for repository in repositories["nodes"]
            for schedule in repository["schedules"]
        }
        assert set(schedules) == {SCHEDULE_NAME}
        schedule = schedules[SCHEDULE_NAME]
        assert schedule["pipelineName"] == all_assets_job.name
        assert schedule["cronSchedule"] == CUSTOM_CRON  # from the server's environment
        assert schedule["executionTimezone"] == "UTC"
        assert schedule["defaultStatus"] == "RUNNING"
        assert schedule["scheduleState"]["status"] == "RUNNING"
