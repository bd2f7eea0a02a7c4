"""Predicted value against acquisition cost: the predicted 12-month CLV of a channel's cohorts
beside what they cost (:func:`predicted_value_by_channel`).

The one place these ratios are computed. The inputs are dbt's (CAC, customers and margin so
far from ``ltv_cac_by_channel_month`` and ``ltv_cac_by_channel``) and the predictions' sums;
the predictions are made after dbt's build, so this step is Python rather than a second dbt
invocation (README, "One dbt invocation").
"""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa

#: The columns of the two outputs, in order (before ``as_of_date``).
BY_MONTH_COLUMNS = (
    "acquisition_channel",
    "cohort_month",
    "acquired_customers",
    "cac",
    "margin_per_customer_to_date",
    "predicted_clv",
    "predicted_clv_per_customer",
    "predicted_value_to_cac",
)
BY_CHANNEL_COLUMNS = (
    "acquisition_channel",
    "customers",
    "cac",
    "gross_margin_to_date",
    "predicted_clv",
    "predicted_clv_per_customer",
    "predicted_value_to_cac",
)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, null (NaN) where either is null or the denominator is 0, as
    SQL's ``x / nullif(y, 0)``."""
    den = denominator.astype("float64").where(denominator.astype("float64") != 0)
    return numerator.astype("float64") / den


def _months(values: pd.Series) -> pd.Series:
    days = pd.to_datetime(values).dt.date
    return pd.Series(list(days), index=values.index, dtype=pd.ArrowDtype(pa.date32()))


def predicted_value_by_channel(
    cohorts: pd.DataFrame,
    channels: pd.DataFrame,
    cohort_predictions: pd.DataFrame,
    channel_predictions: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predicted CLV per acquired customer, and margin so far plus predicted CLV against CAC.

    Parameters
    ----------
    cohorts
        ``ltv_cac_by_channel_month``: ``acquisition_channel``, ``cohort_month``,
        ``acquired_customers``, ``cac``, ``gross_margin_to_date``,
        ``margin_per_customer_to_date``; one row per channel and month.
    channels
        ``ltv_cac_by_channel``: ``acquisition_channel``, ``customers``, ``cac``.
    cohort_predictions
        ``acquisition_channel``, ``cohort_month``, ``predicted_clv``: the predicted CLV summed
        over each cohort's customers (null when the model is not fitted).
    channel_predictions
        ``acquisition_channel``, ``predicted_clv``: the same, summed over each channel's
        customers (summed in the warehouse, exactly, not from the rounded cohort sums).

    Returns
    -------
    by_month, by_channel
        A row per row of ``cohorts`` and of ``channels``, columns :data:`BY_MONTH_COLUMNS` and
        :data:`BY_CHANNEL_COLUMNS`. ``predicted_value_to_cac`` is (margin so far + predicted
        CLV) / customers / CAC; null without customers, CAC or predictions.
    """
    keys = ["acquisition_channel", "cohort_month"]
    left = cohorts.assign(cohort_month=pd.to_datetime(cohorts["cohort_month"]))
    right = cohort_predictions[[*keys, "predicted_clv"]].assign(
        cohort_month=pd.to_datetime(cohort_predictions["cohort_month"])
    )
    month = left.merge(right, on=keys, how="left", validate="one_to_one")
    month["predicted_clv_per_customer"] = _ratio(
        month["predicted_clv"], month["acquired_customers"]
    )
    month["predicted_value_to_cac"] = _ratio(
        _ratio(month["gross_margin_to_date"] + month["predicted_clv"], month["acquired_customers"]),
        month["cac"],
    )
    month["cohort_month"] = _months(month["cohort_month"])
    month["acquired_customers"] = month["acquired_customers"].astype("int64")
    by_month = month.sort_values(keys, ignore_index=True)[list(BY_MONTH_COLUMNS)]

    # the channel's margin so far: its cohorts' margins, summed exactly (fsum: the same in
    # any order, so the same on every engine)
    margin = {
        channel: math.fsum(group.dropna())
        for channel, group in cohorts.groupby("acquisition_channel")["gross_margin_to_date"]
    }
    channel = channels.merge(
        channel_predictions[["acquisition_channel", "predicted_clv"]],
        on="acquisition_channel",
        how="left",
        validate="one_to_one",
    )
    channel["gross_margin_to_date"] = (
        channel["acquisition_channel"].map(margin).astype("float64").fillna(0.0)
    )
    channel["predicted_clv_per_customer"] = _ratio(channel["predicted_clv"], channel["customers"])
    channel["predicted_value_to_cac"] = _ratio(
        _ratio(channel["gross_margin_to_date"] + channel["predicted_clv"], channel["customers"]),
        channel["cac"],
    )
    channel["customers"] = channel["customers"].astype("int64")
    by_channel = channel.sort_values("acquisition_channel", ignore_index=True)[
        list(BY_CHANNEL_COLUMNS)
    ]
    return by_month, by_channel
