"""The code location: the only place that builds ``Definitions``, from the ``defs`` folder."""

from pathlib import Path

import dagster as dg

from ltv_pipeline import settings
from ltv_pipeline.defs.schedules import schedule_cron


@dg.definitions
def defs() -> dg.Definitions:
    """Assets, checks, jobs, schedules and resources for the configured environment.

    The settings are checked first, so a bad ``LTV_*`` value fails with its own message
    (naming the variable) rather than inside Dagster's report of the folder it was loading.
    """
    settings.check_environment()
    schedule_cron()
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
