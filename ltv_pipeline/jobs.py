"""Jobs. Everything runs in one process: DuckDB admits a single writer."""

import dagster as dg

all_assets_job = dg.define_asset_job(
    name="all_assets",
    selection=dg.AssetSelection.all(),
    description="Load raw files, build and test every dbt model, then the Python outputs.",
)
