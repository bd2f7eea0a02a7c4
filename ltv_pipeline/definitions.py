"""The code location: the only place that builds ``Definitions``."""

import dagster as dg

from ltv_pipeline.assets.analytics import customer_revenue_deciles
from ltv_pipeline.assets.cohort_outputs import cohort_retention
from ltv_pipeline.assets.dbt import dbt_models
from ltv_pipeline.assets.ingestion import raw_tables
from ltv_pipeline.assets.predictions import clv_backtest, customer_predictions
from ltv_pipeline.assets.segments import customer_segments, segment_summary_asset
from ltv_pipeline.checks import (
    backtest_beats_baseline,
    cohort_retention_is_consistent,
    deciles_reconcile_with_customers,
    every_buyer_has_one_segment,
    predictions_cover_buyers_and_are_valid,
    raw_checks,
    segment_shares_sum_to_one,
)
from ltv_pipeline.jobs import all_assets_job
from ltv_pipeline.resources import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    """Assets, checks, jobs and resources for the configured environment."""
    return dg.Definitions(
        assets=[
            raw_tables,
            dbt_models,
            customer_revenue_deciles,
            customer_segments,
            segment_summary_asset,
            cohort_retention,
            customer_predictions,
            clv_backtest,
        ],
        asset_checks=[
            *raw_checks,
            deciles_reconcile_with_customers,
            every_buyer_has_one_segment,
            segment_shares_sum_to_one,
            cohort_retention_is_consistent,
            predictions_cover_buyers_and_are_valid,
            backtest_beats_baseline,
        ],
        jobs=[all_assets_job],
        resources=build_resources(),
        executor=dg.in_process_executor,
    )
