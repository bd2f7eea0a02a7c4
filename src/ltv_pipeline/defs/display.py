"""Figures as the Dagster UI shows them: rounded, with their unit, and tables as tables.

The marts keep full precision; only the run metadata is rounded, since a person reads it
(``4.3%`` and ``1,234.56 USD``, not ``0.04312...`` and ``1234.5600000000002``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import dagster as dg

#: The unit of each figure the assets show: money (in the shop currency), a share shown as a
#: percentage, a ratio, purchases, years or months. A float not listed is shown to 4
#: significant digits.
UNITS: dict[str, str] = {
    **dict.fromkeys(
        (
            "historical_ltv",
            "margin_ltv",
            "discounted_ltv",
            "monthly_arpu",
            "cac",
            "spend",
            "predicted_clv",
            "predicted_clv_total",
            "net_revenue",
            "average_historical_ltv",
            "average_predicted_clv",
            "predicted_clv_per_customer",
        ),
        "money",
    ),
    **dict.fromkeys(
        (
            "monthly_churn_rate",
            "annual_churn_rate",
            "churn_rate",
            "retention_rate",
            "lifespan_extrapolated_share",
            "margin_rate",
            "share_of_customers",
            "share_of_revenue",
        ),
        "share",
    ),
    **dict.fromkeys(("ltv_to_cac", "predicted_value_to_cac"), "ratio"),
    # the backtest forecasts purchases (counts), not money
    **dict.fromkeys(("mae", "baseline_mae", "actual_total", "predicted_total"), "purchases"),
    "customer_lifespan_years": "years",
    "expected_active_months": "months",
    "aggregate_error_pct": "percent",
}

#: What the fitted parameters mean, shown beside them (the models' own names, as in lifetimes).
PARAMETERS: dict[str, str] = {
    "bgnbd_r": "BG/NBD r: shape of the gamma spread of purchase rates across customers; "
    "the mean rate is r / alpha purchases per time unit.",
    "bgnbd_alpha": "BG/NBD alpha: scale of that gamma spread, in time units.",
    "bgnbd_a": "BG/NBD a: with b, the beta spread of the chance that a customer is lost after "
    "a purchase; the mean chance is a / (a + b).",
    "bgnbd_b": "BG/NBD b: see a.",
    "bgnbd_log_likelihood": "BG/NBD log-likelihood of the fit (compare fits on the same data).",
    "gamma_gamma_p": "Gamma-Gamma p: shape of a customer's order values around their own mean.",
    "gamma_gamma_q": "Gamma-Gamma q: shape of the spread of customers' mean order values.",
    "gamma_gamma_v": "Gamma-Gamma v: scale of that spread; the mean order value across "
    "customers is p v / (q - 1).",
    "gamma_gamma_log_likelihood": "Gamma-Gamma log-likelihood of the fit.",
    "time_unit_days": "Days in one model time unit (recency and T are counted in whole days).",
}


def figure(name: str, value: Any, currency: str) -> Any:
    """``value`` of figure ``name`` as a person reads it: a string with its unit, or as is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    unit = UNITS.get(name)
    if unit in FORMATS:
        return FORMATS[unit](value, currency)
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


#: How a figure of each unit is written (value, currency) -> text.
FORMATS: dict[str, Callable[[float, str], str]] = {
    "money": lambda v, currency: f"{v:,.2f} {currency}",
    "share": lambda v, _: f"{v:.1%}",
    "percent": lambda v, _: f"{v:.1f}%",
    "ratio": lambda v, _: f"{v:.2f}x",
    "purchases": lambda v, _: f"{v:,.2f} purchases",
    "years": lambda v, _: f"{v:.2f} years",
    "months": lambda v, _: f"{v:.1f} months",
}


#: What a table shows for a figure that has no value (e.g. an LTV the history cannot show).
NOT_AVAILABLE = "n/a"


def _column_type(values: Iterable[Any]) -> str:
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        return "bool"
    if kinds and kinds <= {int}:
        return "int"
    if kinds and kinds <= {int, float}:
        return "float"
    return "string"


def figures_table(
    records: list[Mapping[str, Any]], currency: str, descriptions: Mapping[str, str] | None = None
) -> dg.TableMetadataValue:
    """Rows of figures as a table in the UI, each value through :func:`figure`; a column
    holding "n/a" is typed as text."""
    names = list(records[0]) if records else []
    # every record needs every field: a missing figure reads "n/a"
    shown = [
        {n: NOT_AVAILABLE if r[n] is None else figure(n, r[n], currency) for n in names}
        for r in records
    ]
    descriptions = descriptions or {}
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                _column_type(row[name] for row in shown),
                description=descriptions.get(name),
            )
            for name in names
        ]
    )
    return dg.MetadataValue.table([dg.TableRecord(row) for row in shown], schema=schema)


def parameters_table(fitted: Mapping[str, float | str]) -> dg.TableMetadataValue:
    """The fitted models' parameters, each with its value and what it means."""
    rows = [
        {
            "parameter": name,
            # 7 significant digits: readable, and within 5e-7 of the fit
            "value": float(f"{value:.7g}") if isinstance(value, float) else value,
            "meaning": PARAMETERS.get(name, ""),
        }
        for name, value in fitted.items()
    ]
    return dg.MetadataValue.table(
        [dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("parameter", "string"),
                dg.TableColumn("value", _column_type(r["value"] for r in rows)),
                dg.TableColumn("meaning", "string"),
            ]
        ),
    )


#: The value metrics a glossary explains, in order: (label, table, column). Their meaning is
#: the column's description in the dbt YAML (marts and the Python marts' sources), so each is
#: written once.
GLOSSARY_METRICS = (
    ("Historical LTV", "ltv_summary", "historical_ltv"),
    ("Margin LTV", "ltv_summary", "margin_ltv"),
    ("Discounted LTV", "ltv_summary", "discounted_ltv"),
    ("Predicted CLV", "customer_predictions", "predicted_clv"),
    ("Predicted value to CAC", "predicted_value_by_channel", "predicted_value_to_cac"),
)
#: The model parameters it explains (:data:`PARAMETERS`).
GLOSSARY_PARAMETERS = ("bgnbd_r", "bgnbd_alpha", "bgnbd_a", "bgnbd_b")


def glossary(columns: Mapping[tuple[str, str], str]) -> dg.TableMetadataValue:
    """The metrics glossary shown beside the figures, as a table (the UI shows a table inline,
    markdown behind a button): the LTV variants (historical: from purchases so far;
    predicted: the models' next 12 months) and the BG/NBD parameters.

    ``columns`` maps (table, column) to its description.
    """
    rows = [
        {
            "term": label,
            "meaning": " ".join(columns[(table, column)].split()),
            "where": f"{table}.{column}",
        }
        for label, table, column in GLOSSARY_METRICS
    ]
    for name in GLOSSARY_PARAMETERS:
        term, meaning = PARAMETERS[name].split(": ", 1)
        rows.append({"term": term, "meaning": meaning, "where": "fitted_parameters"})
    return dg.MetadataValue.table(
        [dg.TableRecord(row) for row in rows],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(name, "string") for name in ("term", "meaning", "where")]
        ),
    )


def png_markdown(path: Path, title: str) -> dg.MetadataValue:
    """A PNG inlined as markdown, so the chart shows in the Dagster UI."""
    data = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{data})")
