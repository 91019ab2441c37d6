"""h-step-ahead stage probabilities and first passage into forced flow
(:func:`stressflow.inference.apps.feed.forecast`), on a fit-shaped tree built from known
parameters (no MCMC): against the stationary distribution, one matrix step, and Monte Carlo
paths. Split from ``test_feed.py``."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIM_MU, SIM_P, SIM_SIGMA, make_prepared, simulate_stage_hmm
from fake_fit import fake_fit
from numpy.testing import assert_allclose
from stressflow.inference.apps.feed import forecast
from stressflow.models import dims

K = len(dims.LADDER)


@pytest.fixture(scope="module")
def sim_fit():
    """Fit-shaped tree from known simulation parameters on 400 simulated days."""
    features, _ = simulate_stage_hmm(400, seed=11, n_missing=6)
    return fake_fit(make_prepared(features), SIM_MU, SIM_SIGMA, SIM_P, n_draws=6, seed=3)


def _stationary(trans):
    vals, vecs = np.linalg.eig(trans.T)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    return v / v.sum()


def test_forecast_sums_to_one_and_converges_to_stationary(sim_fit):
    fc = forecast(sim_fit, 3000)
    stages = list(dims.LADDER)
    assert_allclose(fc[stages].sum(axis=1), 1.0, atol=1e-12)
    assert fc.attrs["origin"] == sim_fit.attrs["end"]
    assert fc.index.name == dims.HORIZON and fc.index[0] == 1 and len(fc) == 3000
    trans = sim_fit["posterior"]["P"].transpose(dims.CHAIN, dims.DRAW, ...).values.reshape(-1, K, K)
    pi = np.mean([_stationary(p) for p in trans], axis=0)
    assert_allclose(fc[stages].iloc[-1], pi, atol=1e-8)
    assert np.abs(fc[stages].iloc[0].to_numpy() - pi).max() > 0.05  # it does move
    state = sim_fit["posterior"]["filtered_last"].values.reshape(-1, K)
    one_step = np.einsum("si,sij->sj", state, trans).mean(axis=0)
    assert_allclose(fc[stages].iloc[0], one_step, atol=1e-14)
    for k in stages:
        assert (fc[f"{k}_q05"] <= fc[f"{k}_q95"] + 1e-15).all()


def test_first_passage_is_monotone_and_matches_monte_carlo(sim_fit):
    horizon = 40
    fc = forecast(sim_fit, horizon)
    hit = fc["p_enter_forced_flow"].to_numpy()
    assert (np.diff(hit) >= -1e-15).all() and hit[-1] > hit[0]
    assert_allclose(hit[0], fc["forced_flow"].iloc[0], atol=1e-15)
    assert (hit >= fc["forced_flow"].to_numpy() - 1e-15).all()
    # Monte Carlo: per draw, stage_T ~ state, then the chain with P
    trans = sim_fit["posterior"]["P"].transpose(dims.CHAIN, dims.DRAW, ...).values.reshape(-1, K, K)
    state = sim_fit["posterior"]["filtered_last"].values.reshape(-1, K)
    rng = np.random.default_rng(2024)
    n_paths = 4000
    f_idx = dims.LADDER.index("forced_flow")
    frac = np.zeros(horizon)
    for p, a in zip(trans, state, strict=True):
        s = rng.choice(K, size=n_paths, p=a / a.sum())
        ever = np.zeros(n_paths, dtype=bool)
        cum = np.cumsum(p, axis=1)
        for h in range(horizon):
            u = rng.random(n_paths)
            s = np.minimum((u[:, None] > cum[s]).sum(axis=1), K - 1)
            ever |= s == f_idx
            frac[h] += ever.mean()
    frac /= len(trans)
    se = np.sqrt(np.maximum(hit * (1 - hit), 1e-4) / (n_paths * len(trans)))
    assert (np.abs(frac - hit) < 5 * se).all(), np.abs(frac - hit) / se


def test_forecast_rejects_bad_arguments(sim_fit):
    with pytest.raises(ValueError, match="horizon"):
        forecast(sim_fit, 0)
    with pytest.raises(ValueError, match="target"):
        forecast(sim_fit, 5, target="panic")
    for quantiles in ((1.5,), (0.05, float("nan")), (0.051, 0.049)):
        with pytest.raises(ValueError, match=r"^quantiles must be distinct probabilities"):
            forecast(sim_fit, 5, quantiles=quantiles)
    assert "forced_flow_q50" in forecast(sim_fit, 5, quantiles=0.5).columns
