"""Every dbt model as an asset; dbt tests become asset checks."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from ltv_pipeline.project import dbt_project


class LtvDbtTranslator(DagsterDbtTranslator):
    """Groups follow the dbt folders (staging, intermediate, marts)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else None


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=LtvDbtTranslator(),
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """Build and test the dbt models selected in this run."""
    yield from dbt.cli(["build"], context=context).stream()
