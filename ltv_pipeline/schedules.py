"""Schedules. The cron is read when definitions are built, so a deployment sets it by env."""

from __future__ import annotations

import os

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from ltv_pipeline.jobs import all_assets_job

SCHEDULE_CRON_ENV = "LTV_SCHEDULE_CRON"
DEFAULT_SCHEDULE_CRON = "0 2 * * *"
SCHEDULE_TIMEZONE = "UTC"


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
