"""The ``ltv`` console script's exit (``cli.entry``): the code, the output and the libraries'
exit handlers survive skipping the interpreter's teardown."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
