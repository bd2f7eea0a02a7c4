"""ltv-pipeline: customer lifetime value with Dagster, dbt and DuckDB."""
