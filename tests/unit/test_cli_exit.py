"""The ``ltv`` console script's exit (``cli.entry``): the code, the output and the libraries'
exit handlers survive skipping the interpreter's teardown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

#: A stand-in for ``cli.main``: registers exit handlers as a library would during a run (one
#: writes a file, one leaves output in stdout's buffer: a pipe is block-buffered), prints
#: without a newline, then returns or raises.
PROGRAM = textwrap.dedent(
    """
    import atexit, sys
    from pathlib import Path
    from ltv_pipeline import cli

    out, outcome = Path(sys.argv[1]), sys.argv[2]

    class Witness:
        def __del__(self):  # runs only if the interpreter tears its modules down
            (out / "torn_down").write_text("yes")

    def main(argv=None):
        atexit.register(lambda: (out / "handler").write_text("ran"))
        atexit.register(lambda: print(", a handler's last words", end=""))
        print("summary without a newline", end="")
        if outcome == "raise":
            raise SystemExit("dbt parse failed (exit 2)")
        return int(outcome)

    cli.main = main
    witness = Witness()
    cli.entry()
    """
)


def _run(tmp_path: Path, outcome: str) -> subprocess.CompletedProcess:
    # buffered output, as a user's shell gives it (some CI environments set it unbuffered)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path), outcome],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize("returned", [0, 3])
def test_a_returned_code_exits_with_output_flushed_and_handlers_run_but_no_teardown(
    tmp_path, returned
):
    done = _run(tmp_path, str(returned))
    assert done.returncode == returned, done.stderr
    assert done.stdout == "summary without a newline, a handler's last words"
    # a handler registered during the run (a log flushed, a temporary folder removed) ran
    assert (tmp_path / "handler").read_text() == "ran"
    # and the teardown that costs a second after a real run did not
    assert not (tmp_path / "torn_down").exists()


def test_an_exit_raised_by_main_takes_pythons_own_exit(tmp_path):
    done = _run(tmp_path, "raise")
    assert done.returncode == 1
    assert done.stderr.strip().endswith("dbt parse failed (exit 2)")
    assert done.stdout == "summary without a newline, a handler's last words"
    assert (tmp_path / "handler").read_text() == "ran"
    assert (tmp_path / "torn_down").read_text() == "yes"


#: A stand-in for dbt's command line under ``cli.dbt_entry`` (the ``ltv-dbt`` console script):
#: as dbt does, it registers exit handlers, writes, and ends by raising ``SystemExit`` (click).
DBT_PROGRAM = textwrap.dedent(
    """
    import atexit, sys, types
    from pathlib import Path
    from ltv_pipeline import cli

    out, outcome = Path(sys.argv[1]), sys.argv[2]

    class Witness:
        def __del__(self):
            (out / "torn_down").write_text("yes")

    def fake_dbt():
        atexit.register(lambda: (out / "handler").write_text("ran"))
        print('{"info": {"name": "CommandCompleted"}}', end="")
        code = {"none": None, "0": 0, "2": 2}.get(outcome, outcome)
        raise SystemExit(code)

    sys.modules["dbt.cli.main"] = types.SimpleNamespace(cli=fake_dbt)
    witness = Witness()
    cli.dbt_entry()
    """
)


@pytest.mark.parametrize(
    ("outcome", "status"), [("0", 0), ("none", 0), ("2", 2), ("dbt failed", 1)]
)
def test_ltv_dbt_exits_with_dbts_status_and_output_but_no_teardown(tmp_path, outcome, status):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", DBT_PROGRAM, str(tmp_path), outcome],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == status, done.stderr
    # dbt's last log line reaches dagster-dbt, which reads stdout through a pipe
    assert done.stdout == '{"info": {"name": "CommandCompleted"}}'
    assert (tmp_path / "handler").read_text() == "ran"
    assert not (tmp_path / "torn_down").exists()
    if status == 1:  # Python printed the message, as for any SystemExit with a text
        assert done.stderr.strip() == "dbt failed"


def test_ltv_dbt_answers_as_dbt_does():
    # the installed console scripts, on a command line dbt refuses and on one it answers
    # (offline: `--version` asks the package index for the latest)
    bin_dir = Path(sys.executable).parent
    runs = {
        name: [
            subprocess.run(
                [str(bin_dir / name), *args], capture_output=True, text=True, timeout=120
            )
            for args in (["--no-such-option"], ["debug", "--config-dir", "--log-format", "json"])
        ]
        for name in ("dbt", "ltv-dbt")
    }
    for ours, dbts in zip(runs["ltv-dbt"], runs["dbt"], strict=True):
        assert ours.returncode == dbts.returncode
        assert ours.stderr.replace("ltv-dbt", "dbt") == dbts.stderr
    assert [r.returncode for r in runs["dbt"]] == [2, 0]
    assert "No such option '--no-such-option'" in runs["ltv-dbt"][0].stderr
    # the same JSON log lines, but for their times and ids
    lines = [
        [json.loads(line)["info"]["msg"] for line in r.stdout.splitlines()]
        for r in (runs["ltv-dbt"][1], runs["dbt"][1])
    ]
    assert lines[0] == lines[1]
    assert f"Running with dbt={metadata.version('dbt-core')}" in lines[0]
