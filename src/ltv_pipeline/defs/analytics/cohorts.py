"""Cohort retention tables and charts, from the cohort marts."""

import dagster as dg
import pandas as pd

from ltv_pipeline.analytics.cohorts import (
    channel_ltv_curves,
    plot_ltv_curves,
    plot_retention_heatmap,
    retention_long,
    retention_wide,
)
from ltv_pipeline.defs import (
    MARTS_GROUP,
    REPORTING_WINDOW,
    check_result,
    read_as_of_date,
    replace_mart,
)
from ltv_pipeline.defs.dbt import documented_columns
from ltv_pipeline.defs.display import png_markdown
from ltv_pipeline.defs.resources import RawFiles, ReportsDir
from ltv_pipeline.warehouse.base import MARTS_SCHEMA, Warehouse

RETENTION = dg.AssetKey([MARTS_SCHEMA, "cohort_retention"])
RETENTION_WIDE = dg.AssetKey([MARTS_SCHEMA, "cohort_retention_wide"])
UPSTREAM = [
    dg.AssetKey([MARTS_SCHEMA, "cohort_activity"]),
    dg.AssetKey(["intermediate", "int_cohort_months_aggregated"]),
    dg.AssetKey([MARTS_SCHEMA, "ltv_cac_by_channel"]),
    REPORTING_WINDOW,
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RETENTION,
            deps=UPSTREAM,
            description="One row per cohort and month since acquisition: retention and "
            "cumulative revenue and margin per customer.",
            group_name=MARTS_GROUP,
            kinds={"duckdb", "pandas"},
            metadata=documented_columns("cohort_retention"),
        ),
        dg.AssetSpec(
            RETENTION_WIDE,
            deps=UPSTREAM,
            description="One row per cohort: retention in months m0, m1, ... (heatmap for BI).",
            group_name=MARTS_GROUP,
            kinds={"duckdb", "pandas"},
            metadata=documented_columns("cohort_retention_wide"),
        ),
    ],
    can_subset=False,
)
def cohort_retention(warehouse: Warehouse, reports: ReportsDir, raw_files: RawFiles):
    """Write the retention tables, the retention heatmap and the LTV curves per channel."""
    with warehouse.session() as db:
        activity = db.frame(f"select * from {MARTS_SCHEMA}.cohort_activity")
        channel_months = db.frame("select * from intermediate.int_cohort_months_aggregated")
        cac_frame = db.frame(
            f"select acquisition_channel, cac from {MARTS_SCHEMA}.ltv_cac_by_channel"
        )
        cac = {
            channel: float(value)
            for channel, value in zip(
                cac_frame["acquisition_channel"], cac_frame["cac"], strict=True
            )
            if pd.notna(value)
        }
        as_of_date = read_as_of_date(db)
        long = retention_long(activity)
        wide = retention_wide(long)
        long_rows = replace_mart(
            db, RETENTION, long, as_of_date, "cohort_month, months_since_acquisition"
        )
        wide_rows = replace_mart(db, RETENTION_WIDE, wide, as_of_date, "cohort_month")
    heatmap = plot_retention_heatmap(long, reports.path / "cohort_retention_heatmap.png")
    curves = plot_ltv_curves(
        channel_ltv_curves(channel_months),
        reports.path / "ltv_curves_by_channel.png",
        cac=cac,
        currency=raw_files.currency,
    )
    yield dg.MaterializeResult(
        asset_key=RETENTION,
        metadata={
            "dagster/row_count": long_rows,
            "as_of_date": str(as_of_date),
            "heatmap": png_markdown(heatmap, "retention heatmap"),
            "heatmap_path": dg.MetadataValue.path(str(heatmap)),
            "ltv_curves": png_markdown(curves, "LTV curves by channel"),
            "ltv_curves_path": dg.MetadataValue.path(str(curves)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=RETENTION_WIDE,
        metadata={"dagster/row_count": wide_rows, "as_of_date": str(as_of_date)},
    )


@dg.asset_check(asset=RETENTION, blocking=True)
def cohort_retention_is_consistent(warehouse: Warehouse) -> dg.AssetCheckResult:
    """Retention in [0, 1], month 0 is 100%, cumulative values never decrease."""
    window = "over (partition by cohort_month order by months_since_acquisition)"
    with warehouse.session() as db:
        out_of_range, month0, decreasing = db.row(
            f"""
            with ordered as (
                select *,
                    lag(cumulative_net_revenue_per_customer) {window} as prev_revenue,
                    lag(cumulative_gross_margin_per_customer) {window} as prev_margin
                from {MARTS_SCHEMA}.cohort_retention
            )
            select
                coalesce(sum(case when retention < 0 or retention > 1 or retention is null
                             then 1 else 0 end), 0),
                coalesce(sum(case when months_since_acquisition = 0 and retention <> 1
                             then 1 else 0 end), 0),
                coalesce(sum(case when cumulative_net_revenue_per_customer < prev_revenue - 1e-9
                                  or cumulative_gross_margin_per_customer < prev_margin - 1e-9
                             then 1 else 0 end), 0)
            from ordered
            """
        )
    problems = [
        f"{n} {what}"
        for n, what in [
            (out_of_range, "retention values outside [0, 1]"),
            (month0, "cohorts whose month 0 is not 100%"),
            (decreasing, "cumulative values that decrease"),
        ]
        if n
    ]
    return check_result(
        problems,
        "retention consistent",
        out_of_range=out_of_range,
        month0_not_full=month0,
        decreasing=decreasing,
    )
