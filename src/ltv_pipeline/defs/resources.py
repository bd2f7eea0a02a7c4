"""The resources of every asset, built once from the settings: the warehouse of the configured
engine, the raw file drop, the reports and published folders, and dbt."""

from __future__ import annotations

import datetime as dt
import functools
from importlib import metadata
from pathlib import Path

import dagster as dg
from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource, DbtProject
from packaging import version
from pydantic import Field

from ltv_pipeline import ingest, settings
from ltv_pipeline.warehouse.base import Warehouse
from ltv_pipeline.warehouse.duckdb import DuckDBWarehouse

#: The dbt project, built once: its manifest must exist first (``ltv prepare``, dbt parse).
dbt_project = DbtProject(
    project_dir=settings.DBT_PROJECT_DIR, profiles_dir=settings.DBT_PROJECT_DIR
)


class DbtCli(DbtCliResource):
    """dagster-dbt's dbt resource, without two steps it takes on every run that this project
    has no use for (together 8 s of a 30 s run on a small shop, measured with cProfile).

    - The dbt version: dagster-dbt runs ``dbt --version`` in a subprocess for each run (3 s);
      ``dbt_executable`` is this environment's dbt, so it is the installed dbt-core's.
    - An in-process dbt adapter for each invocation (2.4 s), which dagster-dbt uses only for
      ``fetch_column_metadata`` and ``fetch_row_counts``. The assets call neither (row counts
      are read once dbt has released the warehouse, ``defs/dbt.py``), and building it fails
      anyway, because the profile reads ``DBT_PROJECT_DIR``, which dagster-dbt sets only for
      the dbt subprocess: a WARNING with a 70-line traceback in every run's log.
    """

    @functools.cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: object) -> None:
        return None


class RawFiles(ConfigurableResource):
    """The folder the shop's raw files are dropped into."""

    directory: str = Field(description="Absolute path of the raw drop folder.")
    currency: str = Field(default="USD", description="The shop currency; others are held.")
    mapping_file: str | None = Field(
        default=None,
        description="Absolute path of the input mapping (TOML): the shop's column names, "
        "status values and date formats (LTV_INPUT_MAPPING).",
    )
    max_quarantine_share: float = Field(
        default=settings.DEFAULT_MAX_QUARANTINE_SHARE,
        description="Fail the load when more than this share of a table's rows would be "
        "quarantined (LTV_MAX_QUARANTINE_SHARE).",
    )
    earliest_date: str = Field(
        default=settings.DEFAULT_EARLIEST_DATE.isoformat(),
        description="Rows dated before this day (YYYY-MM-DD) are quarantined as "
        "too_early_<column> (LTV_EARLIEST_DATE).",
    )

    @property
    def earliest(self) -> dt.date:
        """:attr:`earliest_date` as a date."""
        return dt.date.fromisoformat(self.earliest_date)

    @property
    def path(self) -> Path:
        return Path(self.directory)

    def mapping(self) -> ingest.InputMapping | None:
        """The input mapping, read and checked now (:func:`ingest.read_input_mapping`)."""
        if not self.mapping_file:
            return None
        return ingest.read_input_mapping(Path(self.mapping_file))


class ReportsDir(ConfigurableResource):
    """Where charts are written (also shown in the Dagster UI as metadata)."""

    directory: str = Field(description="Absolute path of the reports folder.")

    @property
    def path(self) -> Path:
        return Path(self.directory)


class PublishedDir(ConfigurableResource):
    """Where the BI snapshot is published; BI opens only files under it, read-only."""

    directory: str = Field(description="Absolute path of the published folder.")

    @property
    def path(self) -> Path:
        return Path(self.directory)


def build_resources() -> dict[str, object]:
    """Resources for the configured environment (read when definitions load); the only place
    that picks the engine (LTV_WAREHOUSE). Every ``LTV_*`` setting is checked first
    (:func:`settings.check_environment`)."""
    settings.check_environment()
    warehouse: Warehouse
    if settings.warehouse() == "spark":
        from ltv_pipeline.warehouse.spark import SparkWarehouse, spark_conf

        warehouse = SparkWarehouse(conf=spark_conf())
    else:
        warehouse = DuckDBWarehouse(path=str(settings.duckdb_path()), **settings.duckdb_config())
    return {
        "warehouse": warehouse,
        "raw_files": RawFiles(
            directory=str(settings.raw_dir()),
            mapping_file=str(mapping) if (mapping := settings.input_mapping_file()) else None,
            max_quarantine_share=settings.max_quarantine_share(),
            earliest_date=settings.earliest_date().isoformat(),
        ),
        "reports": ReportsDir(directory=str(settings.reports_dir())),
        "published": PublishedDir(directory=str(settings.published_dir())),
        "dbt": DbtCli(project_dir=dbt_project, dbt_executable=str(settings.dbt_executable())),
    }


@dg.definitions
def resources() -> dg.Definitions:
    """Every resource, built from the settings when the definitions load."""
    return dg.Definitions(resources=build_resources())
