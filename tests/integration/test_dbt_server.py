"""The dbt server of ``ltv run`` (:mod:`ltv_pipeline.dbt_server`): a dbt forked from it must
behave as the dbt ``ltv-dbt`` runs itself, and nothing of it may outlive the run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ltv_pipeline import settings
from ltv_pipeline.dbt_runner import dbt_env
from ltv_pipeline.dbt_server import SERVER_ENV, warm_dbt

LTV_DBT = str(settings.dbt_executable())
PROJECT = [
    "--project-dir",
    str(settings.DBT_PROJECT_DIR),
    "--profiles-dir",
    str(settings.DBT_PROJECT_DIR),
]


def _ltv_dbt(args, env, cwd=None):
    return subprocess.run(
        [LTV_DBT, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def _dbt_pids(stdout: str) -> set[int]:
    """The pids dbt's JSON log lines name: the process that ran dbt."""
    return {json.loads(line)["info"]["pid"] for line in stdout.splitlines() if line.startswith("{")}


def test_a_dbt_forked_from_the_server_answers_as_dbt_run_directly(tmp_path):
    """Same output, exit status, environment and folder as ``ltv-dbt`` running dbt itself; and
    it is the server's fork that ran (dbt logs its own pid), not the ``ltv-dbt`` process."""
    base = {k: v for k, v in dbt_env().items() if k != SERVER_ENV}
    models = ["ls", "--resource-type", "model", "--quiet", *PROJECT]
    missing = ["run-operation", "no_such_macro", *PROJECT]
    direct = _ltv_dbt(models, base)
    direct_missing = _ltv_dbt(missing, base)
    assert direct.returncode == 0, direct.stdout + direct.stderr
    assert "ltv.marts.customers" in direct.stdout.split()
    assert direct_missing.returncode == 2
    with warm_dbt() as server:
        assert server is not None and os.environ[SERVER_ENV] == str(server.path)
        served_env = {**base, SERVER_ENV: str(server.path)}
        served = _ltv_dbt(models, served_env)
        assert (served.returncode, served.stdout, served.stderr) == (0, direct.stdout, "")
        served_missing = _ltv_dbt(missing, served_env)
        assert served_missing.returncode == 2
        assert "could not find a macro with the name 'no_such_macro'" in served_missing.stdout
        # the client's environment, not the server's: JSON lines, with the forked dbt's pid
        as_json = subprocess.Popen(
            [LTV_DBT, "ls", "--resource-type", "model", *PROJECT],
            stdout=subprocess.PIPE,
            text=True,
            env={**served_env, "DBT_LOG_FORMAT": "json"},
        )
        out, _ = as_json.communicate(timeout=120)
        pids = _dbt_pids(out)
        assert as_json.returncode == 0 and len(pids) == 1 and as_json.pid not in pids
        # the client's folder: a project path relative to it
        relative = _ltv_dbt(
            [
                "ls",
                "--resource-type",
                "model",
                "--quiet",
                "--project-dir",
                "dbt_project",
                "--profiles-dir",
                "dbt_project",
            ],
            served_env,
            cwd=settings.REPO_ROOT,
        )
        assert (relative.returncode, relative.stdout) == (0, direct.stdout)
    assert SERVER_ENV not in os.environ
    assert not _alive(server.pid)
    assert not server.path.exists() and not server.path.parent.exists()


def test_without_an_answering_server_ltv_dbt_runs_dbt_itself(tmp_path):
    env = {**dbt_env(), SERVER_ENV: str(tmp_path / "nobody-listens"), "DBT_LOG_FORMAT": "json"}
    run = subprocess.Popen(
        [LTV_DBT, "ls", "--resource-type", "model", *PROJECT],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, _ = run.communicate(timeout=120)
    assert run.returncode == 0
    assert _dbt_pids(out) == {run.pid}


# A server whose "dbt" sleeps until interrupted: the streams, signals and status, without dbt.
SLEEPER_SERVER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from ltv_pipeline.dbt_server import listen, serve

    def run(argv):
        try:  # before "started": the client interrupts as soon as it reads it
            print("started", argv[1:], os.getpid(), flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            return 130
        return 0

    serve(listen(Path(sys.argv[1])), run, parent=int(sys.argv[2]))
    """
)
CLIENT = "import sys; from ltv_pipeline.dbt_server import delegate; sys.exit(delegate(sys.argv))"


def _wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_an_interrupt_of_ltv_dbt_reaches_the_forked_dbt_and_its_status_comes_back(tmp_path):
    """dagster-dbt stops dbt with SIGINT on the process it started: the fork must get it; and
    a fork whose client was killed is ended, as dbt would have been."""
    socket_path = tmp_path / "s"
    server = subprocess.Popen(
        [sys.executable, "-c", SLEEPER_SERVER, str(socket_path), str(os.getpid())]
    )
    try:
        assert _wait_for(socket_path.exists)
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, "build", "--select", "x"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, SERVER_ENV: str(socket_path)},
        )
        started = client.stdout.readline().split()
        assert started[:4] == ["started", "['build',", "'--select',", "'x']"]
        client.send_signal(signal.SIGINT)
        out, _ = client.communicate(timeout=30)
        assert (client.returncode, out) == (130, "interrupted\n")
        assert _wait_for(lambda: not _alive(int(started[4])))
        # a client killed outright cannot forward anything: the server ends the fork itself
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, "run"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, SERVER_ENV: str(socket_path)},
        )
        fork = int(client.stdout.readline().split()[-1])
        assert _alive(fork)
        client.kill()
        client.wait(timeout=30)
        assert _wait_for(lambda: not _alive(fork), 10), "the fork outlived its killed client"
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("how", ["parent dies", "run ends"])
def test_the_server_ends_with_the_process_that_started_it(tmp_path, how):
    """Nothing of a run's server is left: not when ``ltv run`` ends, not when it is killed."""
    pid_file = tmp_path / "server.pid"
    starter = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        from ltv_pipeline.dbt_server import warm_dbt
        with warm_dbt() as server:
            Path({str(pid_file)!r}).write_text(f"{{server.pid}} {{server.path}}")
            time.sleep(0 if {how == "run ends"!r} else 120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", starter])
    assert _wait_for(pid_file.exists, 60)
    server_pid, path = pid_file.read_text().split()
    if how == "parent dies":
        parent.kill()
    parent.wait(timeout=60)
    assert _wait_for(lambda: not _alive(int(server_pid)), 15), "the server outlived its run"
    assert _wait_for(lambda: not Path(path).parent.exists(), 5), "its socket was left"
