"""A dbt kept imported for the run: each ``ltv-dbt`` of the run forks from it instead of
importing dbt again.

Importing dbt costs 1.7-2.9 s of CPU before its first log line (``python -X importtime -c
"from dbt.cli.main import cli"``), in every dbt subprocess, while the run waits on it. ``ltv
run`` starts this server first (:func:`warm_dbt`), so dbt is imported on the second core while
the first imports Dagster and loads the raw files. dagster-dbt still starts its subprocess as
always (``ltv-dbt``, reading its stdout); that process (:func:`delegate`) hands its command
line, environment, folder and standard streams to the server, which forks a child that runs
dbt on those streams, and passes the child's exit status back. Where no server answers
(another command, the Dagster UI's runs, a server that died), ``ltv-dbt`` runs dbt itself.

No Dagster import; one request at a time (a run has one dbt invocation); the server exits
when ``ltv run`` ends or dies.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: The server's socket, set for the run's subprocesses (dagster-dbt's ``ltv-dbt`` among them).
SERVER_ENV = "LTV_DBT_SERVER"
#: The server checks this often (s) whether the process that started it is still alive.
PARENT_POLL_SECONDS = 1.0
#: ... and this often (s) whether the client of a running dbt is still there.
CLIENT_POLL_SECONDS = 0.2
#: The standard streams a request passes: stdin, stdout, stderr.
STREAMS = (0, 1, 2)
_HEADER = struct.Struct("!Q")


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(left)
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def exit_code(status: int) -> int:
    """A process's exit code from ``waitpid``'s status, as a shell reports it (128 + signal)."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def listen(path: Path) -> socket.socket:
    """A Unix socket bound at ``path``; clients that connect wait until :func:`serve` runs."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    return listener


def serve(
    listener: socket.socket, run: Callable[[list[str]], int], *, parent: int | None = None
) -> None:
    """Answer requests on ``listener`` until the process ``parent`` is gone.

    Each request is served by a fork that takes the client's standard streams, environment,
    folder and command line and calls ``run(argv)``; its status goes back to the client.
    """
    listener.settimeout(PARENT_POLL_SECONDS)
    while parent is None or os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(None)
            with contextlib.suppress(OSError):  # a client that went away: serve the next
                _serve_one(conn, listener, run)


def _serve_one(conn: socket.socket, listener: socket.socket, run: Callable) -> None:
    header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, len(STREAMS))
    try:
        if len(header) != _HEADER.size or len(fds) != len(STREAMS):
            raise ConnectionError("a malformed request")
        (size,) = _HEADER.unpack(header)
        request = json.loads(_recv_exactly(conn, size))
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:  # never returns
            _run_child(request, fds, [conn, listener], run)
    finally:
        for fd in fds:  # the child has its own; ours would hold the client's pipes open
            os.close(fd)
    with contextlib.suppress(OSError):
        conn.sendall(f"pid {child}\n".encode())
    status = _wait(child, conn)
    conn.sendall(f"exit {exit_code(status)}\n".encode())


def _wait(child: int, conn: socket.socket) -> int:
    """The fork's wait status. A client that ends first (killed: a signal it could catch is
    forwarded) ends the fork too, as a dbt run directly would have ended with it."""
    stopped = False
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            return status
        readable, _, _ = select.select([conn], [], [], CLIENT_POLL_SECONDS)
        if readable and not stopped:  # the client sends nothing more: this is its end
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
            stopped = True


def _run_child(request: dict, fds: list[int], sockets: list[socket.socket], run: Callable):
    code = 1
    try:
        for sock in sockets:
            sock.close()
        for fd, target in zip(fds, STREAMS, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own defaults
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()  # the C library's zone, from the client's TZ (the interpreter's own
        # options, PYTHON*, stay the server's: it started with the run's environment)
        sys.argv = list(request["argv"])
        code = run(sys.argv)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        # as the process would end: the exit handlers (dbt-duckdb's closes its connections),
        # then the streams; never back into the server's loop
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def delegate(argv: list[str]) -> int | None:
    """Run ``argv`` in the server named by ``LTV_DBT_SERVER``; its exit code, or None when no
    server answers (the caller then runs dbt itself).

    An interrupt or termination of this process is passed on to the forked dbt, as it would
    reach dbt run directly (dagster-dbt stops dbt with SIGINT).
    """
    path = os.environ.get(SERVER_ENV)
    if not path:
        return None
    child: list[int] = []  # the fork's pid, once the server has sent it
    pending: list[int] = []  # signals that came before it

    def forward(signum, _frame):
        if not child:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child[0], signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn:
        try:
            conn.connect(path)
            payload = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()})
            socket.send_fds(conn, [_HEADER.pack(len(payload.encode()))], list(STREAMS))
            conn.sendall(payload.encode())
            replies = conn.makefile("r")
            first = replies.readline().split()
        except OSError:
            first = []
        if len(first) != 2 or first[0] != "pid":  # no server, or it failed before forking
            if pending:
                return 128 + pending[0]  # stopped before anything ran
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(
                    sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
                )
            return None
        child.append(int(first[1]))
        for signum in pending:
            forward(signum, None)
        last = replies.readline().split()
    if len(last) != 2 or last[0] != "exit":
        print("ltv-dbt: the dbt server stopped before dbt finished", file=sys.stderr)
        return 1
    return int(last[1])


def main() -> None:
    """``python -m ltv_pipeline.dbt_server <socket> <parent pid>``: bind, import dbt, serve."""
    from ltv_pipeline import settings
    from ltv_pipeline.cli import run_dbt_here

    path, parent = Path(sys.argv[1]), int(sys.argv[2])
    # a Ctrl-C reaches the forked dbt itself; the server ends with the run (terminate)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listener = listen(path)  # before dbt's import: a client that comes early waits for it
    from dbt.cli.main import cli  # noqa: F401  (the import this server exists to make once)

    with contextlib.suppress(ImportError):
        importlib.import_module(f"dbt.adapters.{settings.warehouse()}")
    try:
        serve(listener, run_dbt_here, parent=parent)
    finally:  # the run died without stopping its server
        _remove_socket(path)


@dataclass(frozen=True)
class DbtServer:
    path: Path
    pid: int


@contextlib.contextmanager
def warm_dbt() -> Iterator[DbtServer | None]:
    """Start a dbt server for the block and point ``LTV_DBT_SERVER`` at it; stop it after.

    Yields the server (None where the platform cannot pass file descriptors, or a server of an
    enclosing block already serves).
    """
    if not hasattr(socket, "send_fds") or os.environ.get(SERVER_ENV):
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="ltv-dbt-"))
    path = folder / "s"
    process = subprocess.Popen(
        [sys.executable, "-m", "ltv_pipeline.dbt_server", str(path), str(os.getpid())],
        # dbt's stdout is a pipe under dagster-dbt; a server started on a terminal would make
        # its children's stdout line-buffered
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    os.environ[SERVER_ENV] = str(path)
    try:
        yield DbtServer(path, process.pid)
    finally:
        os.environ.pop(SERVER_ENV, None)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _remove_socket(path)


def _remove_socket(path: Path) -> None:
    path.unlink(missing_ok=True)  # not there if the server was stopped before it bound
    with contextlib.suppress(OSError):
        path.parent.rmdir()


if __name__ == "__main__":
    main()
