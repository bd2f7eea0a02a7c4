"""The dbt beside this Python, on our project and the configured warehouse: its environment,
the parse Dagster loads (``ltv prepare``) and an invocation (``ltv dbt``)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ltv_pipeline import settings
from ltv_pipeline.dbt_server import SERVER_ENV


def dbt_env() -> dict[str, str]:
    """Environment for a dbt subprocess: the same warehouse file the Python side uses.

    Every ``LTV_*`` setting is checked first (:func:`settings.check_environment`): dbt's
    profile reads some of them itself and would take a bad value silently.
    """
    settings.check_environment()
    return {
        **os.environ,
        settings.DUCKDB_ENV: str(settings.duckdb_path()),
        "DBT_PROJECT_DIR": str(settings.DBT_PROJECT_DIR),
    }


PARSE_STAMP = "ltv_parse_inputs.sha256"
#: settings that only say where files are: the manifest does not record them
LOCATION_ONLY = frozenset({settings.DATA_DIR_ENV, SERVER_ENV})


def parse_inputs() -> str:
    """A digest of everything ``dbt parse`` reads: the project's files and dbt's environment.

    The environment counts because the manifest records it (the warehouse file's name is the
    database of every relation, and ``env_var`` may appear anywhere). Where the files are does
    not: a new data folder or warehouse directory with the same file name gives the same
    manifest (``test_dbt_parse_is_skipped_only_when_its_inputs_are_unchanged``), and a parse
    costs a fixed 8-14 s that a run on a new shop's folder would otherwise pay. dbt's own saved
    parse state holds there too (:func:`parse_state_without_folders`).
    """
    digest = hashlib.sha256()
    project = settings.DBT_PROJECT_DIR
    for relative in project_files(project):
        digest.update(relative.encode() + b"\0" + (project / relative).read_bytes() + b"\0")
    for name, value in sorted(dbt_env().items()):
        if name == settings.DUCKDB_ENV:
            value = Path(value).stem  # the database name; its folder is not in the manifest
        if name.startswith(("LTV_", "DBT_")) and name not in LOCATION_ONLY:
            digest.update(f"{name}={value}\0".encode())
    digest.update(str(settings.dbt_executable().resolve()).encode())
    return digest.hexdigest()


#: What dbt writes into the project folder: its output, and the packages `dbt deps`
#: installs from the project's own package list (which the digest reads).
DBT_OUTPUT_FOLDERS = frozenset({"target", "logs", "dbt_packages"})


def project_files(project: Path) -> list[str]:
    """The project's files dbt may read, as sorted POSIX paths relative to ``project``.

    dbt's output folders are pruned rather than walked: ``target`` holds every kept
    invocation's compiled SQL, thousands of files (0.3 s of each run when it was walked).
    """
    found = []
    for folder, subfolders, files in os.walk(project):
        if Path(folder) == project:
            subfolders[:] = [name for name in subfolders if name not in DBT_OUTPUT_FOLDERS]
        relative = Path(folder).relative_to(project)
        found += [(relative / name).as_posix() for name in files]
    return sorted(found)


def prepare(*, force: bool = False) -> bool:
    """Parse the dbt project so the manifest Dagster loads exists and is current.

    Skipped (about 6 s saved on every run) when the manifest was written from the same
    project files and environment. Returns whether dbt parse ran.

    Other processes may load the manifest while this one parses (two pipelines on one
    checkout with different settings, or tests side by side): dbt writes its files in place,
    so a reader could find ``manifest.json`` empty (a CI run failed so). dbt writes into a
    folder of its own here, and each file is renamed into ``target`` whole; parses are taken
    one at a time under a lock, so the stamp always describes the manifest beside it.
    """
    target = settings.DBT_PROJECT_DIR / "target"
    target.mkdir(exist_ok=True)
    stamp = target / PARSE_STAMP
    wanted = parse_inputs()
    with open(target / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = (target / "manifest.json").exists() and stamp.exists()
        if current and not force and stamp.read_text() == wanted:
            return False
        stamp.unlink(missing_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".parse-", dir=target))
        try:
            for name in PARSE_STATE:  # dbt's saved state, so the parse can be partial
                if (target / name).exists():
                    shutil.copy2(target / name, scratch / name)
            returncode = run_dbt(["parse", "--quiet", "--target-path", str(scratch)])
            if returncode != 0:
                raise SystemExit(f"dbt parse failed (exit {returncode})")
            for name in PARSE_OUTPUT:
                if (scratch / name).exists():
                    os.replace(scratch / name, target / name)
            (scratch / PARSE_STAMP).write_text(wanted)
            os.replace(scratch / PARSE_STAMP, stamp)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return True


#: dbt's saved parse state, read by the next parse
PARSE_STATE = ("partial_parse.msgpack",)
#: what a parse writes that is kept in ``target``; the manifest last, so that a reader who sees
#: a new manifest finds the state it was made with
PARSE_OUTPUT = (*PARSE_STATE, "semantic_manifest.json", "manifest.json")


def run_dbt(dbt_args: list[str]) -> int:
    """Run the dbt beside this Python on our project, against the configured warehouse."""
    project = str(settings.DBT_PROJECT_DIR)
    command = [str(settings.dbt_executable()), *dbt_args]
    command += ["--project-dir", project, "--profiles-dir", project]
    return subprocess.run(command, env=dbt_env(), check=False).returncode


def parse_state_without_folders() -> None:
    """Let dbt's saved parse state hold when the warehouse file is in another folder.

    dbt parses the whole project again (2.6-2.8 s of a 20k-order build) when the profile's
    connection fields differ from those its saved state was made with, and the DuckDB file's
    path is one of them: so every first run on a shop's folder, and every test in its own,
    parsed again. The parse reads the file's name (the database of each relation), not its
    folder (:func:`parse_inputs` relies on the same, and the project reads no ``target.path``:
    ``test_no_dbt_file_reads_the_warehouse_path``). So the state's profile hash is made from
    the connection fields with the path cut to its name; a new name still parses again.

    Called in the ``ltv-dbt`` process before dbt starts (:func:`ltv_pipeline.cli.dbt_entry`).
    A state saved without it has another hash and is parsed again once.
    """
    import pprint

    from dbt.parser.manifest import ManifestLoader

    original = ManifestLoader.build_manifest_state_check
    if getattr(original, "without_folders", False):
        return

    def build_manifest_state_check(loader: ManifestLoader):
        check = original(loader)
        fields = [
            (name, Path(value).name if name == "path" and isinstance(value, str) else value)
            for name, value in loader.root_project.credentials.connection_info()
        ]
        # as dbt makes it, from the sorted pairs' printed form
        check.profile_hash = type(check.profile_hash).from_contents(pprint.pformat(sorted(fields)))
        return check

    build_manifest_state_check.without_folders = True  # type: ignore[attr-defined]
    ManifestLoader.build_manifest_state_check = build_manifest_state_check
