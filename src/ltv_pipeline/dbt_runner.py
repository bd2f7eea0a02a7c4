"""The dbt beside this Python, on our project and the configured warehouse: its environment,
the parse Dagster loads (``ltv prepare``) and an invocation (``ltv dbt``)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from ltv_pipeline import settings


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
LOCATION_ONLY = frozenset({settings.DATA_DIR_ENV})


def parse_inputs() -> str:
    """A digest of everything ``dbt parse`` reads: the project's files and dbt's environment.

    The environment counts because the manifest records it (the warehouse file's name is the
    database of every relation, and ``env_var`` may appear anywhere). Where the files are does
    not: a new data folder or warehouse directory with the same file name gives the same
    manifest (``test_dbt_parse_is_skipped_only_when_its_inputs_are_unchanged``), and a parse
    costs a fixed 8-14 s that a run on a new shop's folder would otherwise pay. dbt's own
    partial parse notices the new path and re-reads the project inside the build (3 s, in a
    process that is started anyway).
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
    """
    target = settings.DBT_PROJECT_DIR / "target"
    stamp = target / PARSE_STAMP
    wanted = parse_inputs()
    current = (target / "manifest.json").exists() and stamp.exists()
    if current and not force and stamp.read_text() == wanted:
        return False
    stamp.unlink(missing_ok=True)
    returncode = run_dbt(["parse", "--quiet"])
    if returncode != 0:
        raise SystemExit(f"dbt parse failed (exit {returncode})")
    stamp.write_text(wanted)
    return True


def run_dbt(dbt_args: list[str]) -> int:
    """Run the dbt beside this Python on our project, against the configured warehouse."""
    project = str(settings.DBT_PROJECT_DIR)
    command = [str(settings.dbt_executable()), *dbt_args]
    command += ["--project-dir", project, "--profiles-dir", project]
    return subprocess.run(command, env=dbt_env(), check=False).returncode
