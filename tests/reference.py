"""An independent pandas implementation of the mart definitions, for tests only.

It reads the raw CSV files (no DuckDB, no SQL) and follows the README's definitions with plain
date arithmetic, so agreement with the dbt marts means both read the definitions the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Params:
    as_of: dt.date | None = None
    churn_days: int = 180
    lookback_months: int = 12
    default_margin_rate: float = 0.35
    max_lifespan_years: int = 10
    discount_rate: float = 0.10
    min_months_beyond_churn_window: int = 3
    min_churn_events: int = 30
    max_extrapolated_share: float = 0.5


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_end(month: dt.date) -> dt.date:
    return _add_months(month, 1) - dt.timedelta(days=1)


def load(raw_dir: Path, params: Params) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dt.date]:
    customers = pd.read_csv(raw_dir / "customers.csv", dtype=str, keep_default_na=False)
    orders = pd.read_csv(raw_dir / "orders.csv", dtype=str, keep_default_na=False)
    spend = pd.read_csv(raw_dir / "marketing_spend.csv", dtype=str, keep_default_na=False)
    orders["date"] = pd.to_datetime(orders["ordered_at"], utc=True).dt.date
    as_of = params.as_of or orders["date"].max()
    orders = orders[orders["date"] <= as_of].copy()
    orders["amount"] = orders["amount"].astype(float)
    orders["cost"] = pd.to_numeric(orders["cost"].replace("", np.nan))
    purchases = orders[orders["status"].str.lower() == "completed"].copy()
    purchases["margin"] = np.where(
        purchases["cost"].isna(),
        purchases["amount"] * params.default_margin_rate,
        purchases["amount"] - purchases["cost"],
    )
    purchases["customer_id"] = purchases["customer_id"].astype(int)
    # a purchase is a customer's completed orders on one day
    purchases = purchases.groupby(["customer_id", "date"])[["amount", "margin"]].sum().reset_index()
    customers["customer_id"] = customers["customer_id"].astype(int)
    customers["signup_date"] = pd.to_datetime(customers["signup_date"]).dt.date
    customers["acquisition_channel"] = customers["acquisition_channel"].str.lower()
    spend["date"] = pd.to_datetime(spend["date"]).dt.date
    spend["spend"] = spend["spend"].astype(float)
    spend["channel"] = spend["channel"].str.lower()
    return customers, purchases, spend[spend["date"] <= as_of], as_of


def customer_months(purchases: pd.DataFrame, as_of: dt.date, churn_days: int) -> pd.DataFrame:
    """Per customer and month from the first purchase month: purchases, value and state."""
    rows = []
    churn = dt.timedelta(days=churn_days)
    for customer_id, group in purchases.groupby("customer_id"):
        dates = np.array(sorted(group["date"]), dtype="datetime64[D]")

        def last_on_or_before(day: dt.date, dates=dates):
            i = np.searchsorted(dates, np.datetime64(day, "D"), side="right")
            return None if i == 0 else dates[i - 1].astype(dt.date)

        def active(day: dt.date) -> bool:
            last = last_on_or_before(day)
            return last is not None and day - last <= churn

        month, since = _month_start(dates[0].astype(dt.date)), 0
        while month <= as_of:
            end = min(_month_end(month), as_of)
            in_month = group[(group["date"] >= month) & (group["date"] <= end)]
            start_active = active(month - dt.timedelta(days=1))
            end_active = active(end)
            rows.append(
                {
                    "customer_id": customer_id,
                    "month_start": month,
                    "since": since,
                    "purchases": len(in_month),
                    "revenue": in_month["amount"].sum(),
                    "margin": in_month["margin"].sum(),
                    "active_start": start_active,
                    "active_end": end_active,
                    "new": since == 0,
                    "churned": start_active and not end_active,
                    "reactivated": since > 0 and not start_active and len(in_month) > 0,
                }
            )
            month, since = _add_months(month, 1), since + 1
    return pd.DataFrame(rows)


def reference_marts(raw_dir: Path, params: Params = Params()) -> dict[str, pd.DataFrame]:
    customers, purchases, spend, as_of = load(raw_dir, params)
    months = customer_months(purchases, as_of, params.churn_days)
    channel = customers.set_index("customer_id")["acquisition_channel"]
    months["channel"] = months["customer_id"].map(channel)

    per_customer = purchases.groupby("customer_id").agg(
        purchases=("amount", "size"),
        net_revenue=("amount", "sum"),
        gross_margin=("margin", "sum"),
        first_order_date=("date", "min"),
        last_order_date=("date", "max"),
    )
    per_customer["days_since_last_purchase"] = [
        (as_of - d).days for d in per_customer["last_order_date"]
    ]
    per_customer["is_churned"] = per_customer["days_since_last_purchase"] > params.churn_days

    churn = (
        months.groupby("month_start")
        .agg(
            active_at_start=("active_start", "sum"),
            new_customers=("new", "sum"),
            churned_customers=("churned", "sum"),
            reactivated_customers=("reactivated", "sum"),
            active_at_end=("active_end", "sum"),
        )
        .reset_index()
    )
    churn["churn_rate"] = churn["churned_customers"] / churn["active_at_start"].replace(0, np.nan)

    acquired = months[months["new"]].groupby(["channel", "month_start"]).size()
    spent = (
        spend.assign(month_start=spend["date"].map(_month_start))
        .groupby(["channel", "month_start"])["spend"]
        .sum()
    )
    cac = pd.concat([spent.rename("spend"), acquired.rename("new_customers")], axis=1).fillna(0)
    cac["cac"] = cac["spend"].replace(0, np.nan) / cac["new_customers"].replace(0, np.nan)
    cac = cac.reset_index().rename(columns={"channel": "acquisition_channel"})

    cohorts = months.groupby(["customer_id"])["month_start"].min().rename("cohort_month")
    months["cohort_month"] = months["customer_id"].map(cohorts)
    cohort = (
        months.groupby(["cohort_month", "since"])
        .agg(
            active_customers=("purchases", lambda s: int((s > 0).sum())),
            purchases=("purchases", "sum"),
            net_revenue=("revenue", "sum"),
            gross_margin=("margin", "sum"),
        )
        .reset_index()
    )
    sizes = months[months["new"]].groupby("cohort_month").size()
    cohort["acquired_customers"] = cohort["cohort_month"].map(sizes)
    cohort["cumulative_gross_margin_per_customer"] = (
        cohort.groupby("cohort_month")["gross_margin"].cumsum() / cohort["acquired_customers"]
    )

    window_end = (
        as_of + dt.timedelta(days=1)
        if as_of == _month_end(_month_start(as_of))
        else _month_start(as_of)
    )
    window_start = _add_months(window_end, -params.lookback_months)
    in_window = months[
        (months["month_start"] >= window_start) & (months["month_start"] < window_end)
    ]

    months["complete"] = [_month_end(m) <= as_of for m in months["month_start"]]
    window_months = int(np.ceil(params.churn_days / (365.25 / 12)))

    def lifespan_months(frame: pd.DataFrame) -> float | None:
        """Area under the still-active curve over complete tenure months + geometric tail."""
        done = frame[frame["complete"]]
        curve = done.groupby("since").agg(n=("active_end", "size"), share=("active_end", "mean"))
        observed = len(curve)
        if observed < window_months + params.min_months_beyond_churn_window:
            return None
        if done["churned"].sum() < params.min_churn_events:
            return None
        settled = curve[(2 * curve.index >= window_months + observed - 1) & (curve["share"] > 0)]
        if len(settled) < 2:
            return None
        x = settled.index.to_numpy(dtype=float)
        slope, intercept = np.polyfit(
            x, np.log(settled["share"]), 1, w=np.sqrt(settled["n"].to_numpy(float))
        )
        if not slope < 0:
            return None
        tail = np.exp(intercept + slope * (observed - 1)) * np.exp(slope) / (1 - np.exp(slope))
        total = curve["share"].sum() + tail
        return None if tail > params.max_extrapolated_share * total else total

    def ltv(frame: pd.DataFrame, buyers: int, all_months: pd.DataFrame) -> dict[str, float]:
        purchases_n = frame["purchases"].sum()
        revenue, margin = frame["revenue"].sum(), frame["margin"].sum()
        apv = revenue / purchases_n
        apf = purchases_n / buyers * 12 / params.lookback_months
        rate = margin / revenue
        active_months = (frame["active_start"] | (frame["purchases"] > 0)).sum()
        expected = lifespan_months(all_months)
        if expected is None:
            return {
                "average_purchase_value": apv,
                "purchase_frequency": apf,
                "expected_active_months": None,
                "monthly_churn_rate": None,
                "customer_lifespan_years": None,
                "historical_ltv": None,
                "margin_ltv": None,
                "discounted_ltv": None,
                "subscription_ltv": None,
            }
        lifespan = min(expected / 12, params.max_lifespan_years)
        monthly = 1 / (12 * lifespan)
        annual = 1 - (1 - monthly) ** 12
        yearly = apv * apf * rate
        return {
            "average_purchase_value": apv,
            "purchase_frequency": apf,
            "expected_active_months": expected,
            "monthly_churn_rate": monthly,
            "customer_lifespan_years": lifespan,
            "historical_ltv": apv * apf * lifespan,
            "margin_ltv": apv * apf * lifespan * rate,
            "discounted_ltv": sum(
                yearly * (1 - annual) ** t / (1 + params.discount_rate) ** t
                for t in range(100)
                if t < lifespan
            ),
            "subscription_ltv": revenue / active_months * rate / monthly,
        }

    buyers = in_window[in_window["purchases"] > 0]
    summary = {("overall", "all"): ltv(in_window, buyers["customer_id"].nunique(), months)}
    for name, frame in in_window.groupby("channel"):
        summary[("acquisition_channel", name)] = ltv(
            frame,
            buyers[buyers["channel"] == name]["customer_id"].nunique(),
            months[months["channel"] == name],
        )
    return {
        "as_of": as_of,
        "customers": per_customer,
        "churn_monthly": churn,
        "cac_monthly": cac,
        "cohort_activity": cohort,
        "ltv_summary": summary,
    }
