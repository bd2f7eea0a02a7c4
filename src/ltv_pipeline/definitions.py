"""The code location: the only place that builds ``Definitions``, from the ``defs`` folder."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """Assets, checks, jobs, schedules and resources for the configured environment."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
