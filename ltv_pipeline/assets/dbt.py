"""Every dbt model as an asset; dbt tests become asset checks."""

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from pydantic import Field, field_validator

from ltv_pipeline.project import dbt_project


class LtvDbtTranslator(DagsterDbtTranslator):
    """Groups follow the dbt folders (staging, intermediate, marts)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else None


class DbtBuildConfig(dg.Config):
    """Run options: rebuild the marts as of a past date, or rebuild incremental models."""

    as_of_date: str | None = None
    full_refresh: bool = False
    # Other dbt vars (e.g. churn_inactivity_days); each is range-checked by its macro.
    vars: dict[str, float] = Field(default_factory=dict)

    @field_validator("as_of_date")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is not None:
            dt.date.fromisoformat(value)  # raises ValueError naming the bad value
        return value

    def cli_args(self) -> list[str]:
        args = ["build"]
        dbt_vars = {name: int(v) if float(v).is_integer() else v for name, v in self.vars.items()}
        if self.as_of_date:
            dbt_vars["as_of_date"] = self.as_of_date
        if dbt_vars:
            args += ["--vars", json.dumps(dbt_vars, sort_keys=True)]
        if self.full_refresh:
            args.append("--full-refresh")
        return args


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=LtvDbtTranslator(),
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig):
    """Build and test the dbt models selected in this run."""
    yield from dbt.cli(config.cli_args(), context=context).stream()
