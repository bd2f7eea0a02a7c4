"""Parameter recovery through the whole pipeline: files -> loader -> dbt summary -> fit.

A shop with ONE channel, so every buyer follows one BG/NBD and one Gamma-Gamma model whose
parameters are known (truth.json). The fitted parameters the customer_predictions asset
reports must lie within 4 standard errors of the truth, the standard errors coming from the
Hessian of the log-likelihood on the very summary the warehouse built.

Why 4 standard errors: the maximum-likelihood estimate is asymptotically normal around the
truth with that covariance, so a correct pipeline lands within 4 SE with probability
> 0.9999 per parameter, while a wrong time unit, an off-by-one frequency or a recency measured
from the wrong origin shifts the estimates by many standard errors at this sample size (the
test also shows an off-by-one frequency is caught). The seed is fixed, so the test is
deterministic either way.
"""

from __future__ import annotations

import dataclasses
import json

import dagster as dg
import duckdb
import numpy as np
import pytest

from ltv_pipeline import clv
from ltv_pipeline.defs.clv import PREDICTIONS
from ltv_pipeline.sample.generate import CHANNELS, generate_shop
from tests.helpers import fitted_parameters, run_pipeline
from tests.unit.test_clv import hessian_of

CHANNEL = dataclasses.replace(CHANNELS[1], share=1.0)  # paid_search: r .7 alpha 9 a 2 b 5.5
CUSTOMERS = 12_000


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    root = tmp_path_factory.mktemp("recovery")
    generate_shop(root / "raw", customers=CUSTOMERS, seed=3, channels=[CHANNEL])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTV_DATA_DIR", str(root))
        mp.setenv("LTV_DUCKDB_PATH", str(root / "warehouse.duckdb"))
        # the loader is one multi-asset: take all of it
        selection = dg.AssetSelection.assets(PREDICTIONS).upstream() | dg.AssetSelection.groups(
            "raw"
        )
        result = run_pipeline(selection)
    assert result.success
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        summary = con.execute(
            "select frequency, recency_days / 7 as recency, t_days / 7 as t, monetary_value "
            "from intermediate.int_customer_purchases_summarized"
        ).df()
    truth = json.loads((root / "raw" / "truth.json").read_text())
    model = fitted_parameters(result, "marts/customer_predictions")
    return summary, truth, model


def _standard_errors(gradient, theta):
    return np.sqrt(np.diag(np.linalg.inv(-hessian_of(gradient, theta))))


def test_truth_is_the_one_channel(recovered):
    _, truth, _ = recovered
    assert list(truth["channels"]) == [CHANNEL.name]


def test_bgnbd_parameters_are_recovered_within_4_standard_errors(recovered):
    summary, truth_json, model = recovered
    x, tx, t = (summary[c].to_numpy(float) for c in ("frequency", "recency", "t"))
    assert len(summary) > 7_000  # buyers
    truth = np.array(
        [truth_json["channels"][CHANNEL.name]["bgnbd"][k] for k in ("r", "alpha", "a", "b")]
    )
    fitted = np.array([model[f"bgnbd_{k}"] for k in ("r", "alpha", "a", "b")])
    se = _standard_errors(lambda th: clv.bgnbd_gradient(th, x, tx, t), fitted)
    z = (fitted - truth) / se
    assert np.all(np.abs(z) < 4), dict(zip(["r", "alpha", "a", "b"], z.round(2), strict=True))
    # the check has power: counting the first purchase as a repeat one (an off-by-one a
    # summary could make) moves the estimates far outside the band
    # (customers whose first purchase is on the as-of day have T = 0: no room for a repeat)
    keep = t > 0
    wrong = clv.fit_bgnbd((x + 1)[keep], np.where(x > 0, tx, t / 2)[keep], t[keep])
    z_wrong = (np.array(list(wrong.params().values())) - truth) / se
    assert np.max(np.abs(z_wrong)) > 10


def test_gamma_gamma_parameters_are_recovered_within_4_standard_errors(recovered):
    summary, truth_json, model = recovered
    repeat = summary[summary["frequency"] > 0]
    x, m = repeat["frequency"].to_numpy(float), repeat["monetary_value"].to_numpy(float)
    truth = np.array([truth_json["channels"][CHANNEL.name]["gamma_gamma"][k] for k in "pqv"])
    fitted = np.array([model[f"gamma_gamma_{k}"] for k in ("p", "q", "v")])
    se = _standard_errors(lambda th: clv.gamma_gamma_gradient(th, x, m), fitted)
    z = (fitted - truth) / se
    assert np.all(np.abs(z) < 4), dict(zip(["p", "q", "v"], z.round(2), strict=True))
