"""The dbt project, built once. Its manifest must exist first: run ``ltv prepare`` (dbt parse)."""

from dagster_dbt import DbtProject

from ltv_pipeline.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
