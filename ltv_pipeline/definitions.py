"""The code location: the only place that builds ``Definitions``."""

import dagster as dg

from ltv_pipeline.assets.analytics import customer_revenue_deciles
from ltv_pipeline.assets.dbt import dbt_models
from ltv_pipeline.assets.ingestion import raw_tables
from ltv_pipeline.checks import deciles_reconcile_with_customers, raw_checks
from ltv_pipeline.jobs import all_assets_job
from ltv_pipeline.resources import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    """Assets, checks, jobs and resources for the configured environment."""
    return dg.Definitions(
        assets=[raw_tables, dbt_models, customer_revenue_deciles],
        asset_checks=[*raw_checks, deciles_reconcile_with_customers],
        jobs=[all_assets_job],
        resources=build_resources(),
        executor=dg.in_process_executor,
    )
