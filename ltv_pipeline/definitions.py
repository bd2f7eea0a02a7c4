"""The code location: the only place that builds ``Definitions``."""

import dagster as dg

from ltv_pipeline.assets.analytics import MARTS_SCHEMA, customer_revenue_deciles
from ltv_pipeline.assets.cohort_outputs import cohort_retention
from ltv_pipeline.assets.dbt import dbt_models
from ltv_pipeline.assets.ingestion import raw_tables
from ltv_pipeline.assets.predictions import clv_backtest, customer_predictions
from ltv_pipeline.assets.publishing import NOT_PUBLISHED, published_marts_asset
from ltv_pipeline.assets.segments import customer_segments, segment_summary_asset
from ltv_pipeline.checks import (
    backtest_fit_not_broken,
    backtest_within_accuracy_bars,
    cohort_retention_is_consistent,
    deciles_reconcile_with_customers,
    every_buyer_has_one_segment,
    predictions_cover_buyers_and_are_valid,
    published_snapshot_matches_manifest,
    raw_checks,
    segment_shares_sum_to_one,
)
from ltv_pipeline.jobs import all_assets_job
from ltv_pipeline.resources import build_resources
from ltv_pipeline.schedules import nightly_schedule


@dg.definitions
def defs() -> dg.Definitions:
    """Assets, checks, jobs and resources for the configured environment."""
    outputs = [
        customer_revenue_deciles,
        customer_segments,
        segment_summary_asset,
        cohort_retention,
        customer_predictions,
        clv_backtest,
    ]
    marts = [
        key
        for asset in (dbt_models, *outputs)
        for key in asset.keys
        if key.path[0] == MARTS_SCHEMA and key.path[-1] not in NOT_PUBLISHED
    ]
    return dg.Definitions(
        assets=[raw_tables, dbt_models, *outputs, published_marts_asset(marts)],
        asset_checks=[
            *raw_checks,
            deciles_reconcile_with_customers,
            every_buyer_has_one_segment,
            segment_shares_sum_to_one,
            cohort_retention_is_consistent,
            predictions_cover_buyers_and_are_valid,
            backtest_fit_not_broken,
            backtest_within_accuracy_bars,
            published_snapshot_matches_manifest,
        ],
        jobs=[all_assets_job],
        schedules=[nightly_schedule()],
        resources=build_resources(),
        executor=dg.in_process_executor,
    )
