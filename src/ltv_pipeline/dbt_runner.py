"""The dbt beside this Python, on our project and the configured warehouse: its environment,
the parse Dagster loads (``ltv prepare``) and an invocation (``ltv dbt``)."""

from __future__ import annotations

import hashlib
import os
import subprocess

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


def parse_inputs() -> str:
    """A digest of everything ``dbt parse`` reads: the project's files and dbt's environment.

    The environment counts because the manifest records it (the warehouse file's name is the
    database of every relation, and ``env_var`` may appear anywhere).
    """
    digest = hashlib.sha256()
    project = settings.DBT_PROJECT_DIR
    skip = {"target", "logs", "dbt_packages"}
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if path.is_file() and relative.parts[0] not in skip:
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for name, value in sorted(dbt_env().items()):
        if name.startswith(("LTV_", "DBT_")):
            digest.update(f"{name}={value}\0".encode())
    digest.update(str(settings.dbt_executable().resolve()).encode())
    return digest.hexdigest()


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
