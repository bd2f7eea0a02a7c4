"""What the Dagster UI shows of the figures and the checks, worked out by hand."""

import math

from ltv_pipeline.defs.dbt import describe_dbt_test
from ltv_pipeline.defs.display import (
    GLOSSARY_METRICS,
    figure,
    figures_table,
    glossary,
    parameters_table,
)


def test_figures_are_rounded_and_carry_their_unit():
    assert figure("historical_ltv", 1234.5600000000002, "EUR") == "1,234.56 EUR"
    assert figure("monthly_churn_rate", 0.043125, "USD") == "4.3%"
    assert figure("aggregate_error_pct", 12.345, "USD") == "12.3%"  # already a percentage
    assert figure("ltv_to_cac", 3.2, "USD") == "3.20x"
    assert figure("mae", 0.8281, "USD") == "0.83 purchases"  # the backtest counts purchases
    assert figure("customer_lifespan_years", 2.456, "USD") == "2.46 years"
    assert figure("spearman", 0.123456789, "USD") == 0.1235  # no unit: 4 significant digits
    assert figure("months_observed", 24, "USD") == 24  # whole numbers stay as they are
    assert figure("is_reliable", False, "USD") is False  # a bool is not the number 0
    assert figure("historical_ltv", None, "USD") is None
    assert figure("historical_ltv", math.nan, "USD") == "nan"


def test_a_figures_table_types_its_columns_and_shows_a_missing_figure_as_not_available():
    table = figures_table(
        [
            {"acquisition_channel": "email", "ltv_to_cac": 3.0, "customers": 10},
            {"acquisition_channel": "paid", "ltv_to_cac": None, "customers": 4},
        ],
        "USD",
        {"ltv_to_cac": "margin LTV / CAC"},
    )
    assert [(c.name, c.type, c.description) for c in table.schema.columns] == [
        ("acquisition_channel", "string", None),
        ("ltv_to_cac", "string", "margin LTV / CAC"),
        ("customers", "int", None),
    ]
    assert [dict(r.data) for r in table.records] == [
        {"acquisition_channel": "email", "ltv_to_cac": "3.00x", "customers": 10},
        {"acquisition_channel": "paid", "ltv_to_cac": "n/a", "customers": 4},
    ]


def test_fitted_parameters_keep_seven_digits_and_say_what_they_are():
    table = parameters_table({"bgnbd_r": 0.24259395230803, "time_unit_days": 7.0})
    rows = [dict(r.data) for r in table.records]
    assert [(r["parameter"], r["value"]) for r in rows] == [
        ("bgnbd_r", 0.242594),
        ("time_unit_days", 7.0),
    ]
    assert "gamma" in rows[0]["meaning"] and "days" in rows[1]["meaning"].lower()


def _test_node(name, kwargs, severity="error"):
    return {
        "name": "t",
        "package_name": "ltv",
        "test_metadata": {"name": name, "kwargs": {"model": "{{ ref('m') }}", **kwargs}},
        "config": {"severity": severity},
    }


def test_each_dbt_test_is_described_from_its_arguments_or_its_file():
    manifest = {
        "macros": {
            "macro.ltv.test_churn_flow_balances": {
                "original_file_path": "tests/generic/test_churn_flow_balances.sql"
            }
        }
    }
    between = _test_node("between", {"column_name": "share", "max_value": 1}, severity="warn")
    assert describe_dbt_test(between, manifest) == (
        "`share` is at most 1 (nulls pass). Severity warn: a failure is reported and the run "
        "goes on."
    )
    both = _test_node("between", {"column_name": "rate", "min_value": 0, "max_value": 1})
    assert describe_dbt_test(both, manifest).startswith("`rate` lies in [0, 1] (nulls pass).")
    # the project's own test says what it checks in the comment that opens its file
    flow = describe_dbt_test(_test_node("churn_flow_balances", {}), manifest)
    assert flow.startswith("Fails for each month where active_at_end differs from")
    assert flow.endswith("Severity error: a failure stops the run.")
    # a description written for the test wins
    own = {**_test_node("not_null", {"column_name": "x"}), "description": "Said by hand."}
    assert describe_dbt_test(own, manifest).startswith("Said by hand. ")


def test_the_glossary_lists_each_value_metric_and_parameter_with_its_description():
    columns = {(t, c): f"meaning of {c}\n   over two lines." for _, t, c in GLOSSARY_METRICS}
    rows = [record.data for record in glossary(columns).records]
    assert rows[0] == {
        "term": "Historical LTV",
        "where": "ltv_summary.historical_ltv",
        "meaning": "meaning of historical_ltv over two lines.",
    }
    assert [row["term"] for row in rows] == [
        "Historical LTV",
        "Margin LTV",
        "Discounted LTV",
        "Predicted CLV",
        "Predicted value to CAC",
        "BG/NBD r",
        "BG/NBD alpha",
        "BG/NBD a",
        "BG/NBD b",
    ]
    assert rows[7]["where"] == "fitted_parameters"
    assert rows[7]["meaning"].startswith("with b, the beta spread")
