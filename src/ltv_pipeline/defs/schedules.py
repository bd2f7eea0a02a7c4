"""The nightly job and its schedule. Everything runs in one process: DuckDB admits a single
writer. The cron is read when definitions are built, so a deployment sets it by env."""

from __future__ import annotations

import os

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from ltv_pipeline.defs.alerts import alert_webhook

SCHEDULE_CRON_ENV = "LTV_SCHEDULE_CRON"
DEFAULT_SCHEDULE_CRON = "0 2 * * *"
SCHEDULE_TIMEZONE = "UTC"


all_assets_job = dg.define_asset_job(
    name="all_assets",
    selection=dg.AssetSelection.all(),
    description="Load raw files, build and test every dbt model, then the Python outputs.",
    # a failed step is POSTed to LTV_ALERT_WEBHOOK_URL when it is set
    hooks={alert_webhook},
)


def schedule_cron() -> str:
    """The nightly cron from ``LTV_SCHEDULE_CRON``; a bad value fails loudly, never silently."""
    value = os.environ.get(SCHEDULE_CRON_ENV, "").strip()
    if not value:
        return DEFAULT_SCHEDULE_CRON
    if not is_valid_cron_string(value):
        raise ValueError(
            f"{SCHEDULE_CRON_ENV}={value!r} is not a valid 5-field cron string "
            f"(e.g. {DEFAULT_SCHEDULE_CRON!r}, minute hour day-of-month month day-of-week)"
        )
    return value


def nightly_schedule() -> dg.ScheduleDefinition:
    """Every asset once a night; RUNNING by default so a deployed daemon picks it up unasked."""
    return dg.ScheduleDefinition(
        name=f"{all_assets_job.name}_schedule",
        job=all_assets_job,
        cron_schedule=schedule_cron(),
        execution_timezone=SCHEDULE_TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Materialize every asset; cron from {SCHEDULE_CRON_ENV} (UTC).",
    )


@dg.definitions
def schedules() -> dg.Definitions:
    """The job, the schedule (its cron read now) and the in-process executor."""
    return dg.Definitions(
        jobs=[all_assets_job], schedules=[nightly_schedule()], executor=dg.in_process_executor
    )
