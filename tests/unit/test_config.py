"""Values from run config never reach SQL as text: dates are parsed, vars are numbers."""

from __future__ import annotations

import json

import pydantic
import pytest

from ltv_pipeline.defs.dbt import DbtBuildConfig


@pytest.mark.parametrize(
    "value", ["2026-01-31'; drop table marts.customers; --", "yesterday", "2026-02-30"]
)
def test_as_of_date_must_be_an_iso_date(value):
    with pytest.raises(pydantic.ValidationError, match="as_of_date"):
        DbtBuildConfig(as_of_date=value)


def test_vars_must_be_numbers():
    with pytest.raises(pydantic.ValidationError):
        DbtBuildConfig(vars={"churn_inactivity_days": "90) or (1=1"})


def test_config_becomes_a_json_vars_argument_for_dbt():
    config = DbtBuildConfig(
        as_of_date="2026-01-31", full_refresh=True, vars={"churn_inactivity_days": 90.0}
    )
    args = config.cli_args()
    assert args[0] == "build" and args[-1] == "--full-refresh"
    assert json.loads(args[args.index("--vars") + 1]) == {
        "as_of_date": "2026-01-31",
        "churn_inactivity_days": 90,
    }
