"""FFBS path samples over several posterior draws (stressflow.inference.postprocess.paths)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stressflow.inference.postprocess.paths import SAMPLE, sample_stage_paths, stage_paths
from stressflow.models import dims
from stressflow.models.emissions import emission_loglik, masked_observations
from stressflow.models.numerics import kernels

try:
    from tests.conftest import (
        SIM_MU,
        SIM_P,
        SIM_SIGMA,
        draw_terms,
        make_prepared,
        simulate_stage_hmm,
    )
    from tests.fake_fit import fake_fit
except ImportError:  # pytest's rootdir-less "prepend" import of tests/test_*.py
    from conftest import SIM_MU, SIM_P, SIM_SIGMA, draw_terms, make_prepared, simulate_stage_hmm
    from fake_fit import fake_fit

K = len(dims.LADDER)


def _draws(n_draws, seed):
    """Three-ish parameter draws around the simulation truth (S, K, D) / (S, K, K)."""
    rng = np.random.default_rng(seed)
    mu = np.asarray(SIM_MU) + 0.3 * rng.standard_normal((n_draws, K, 4))
    sigma = np.asarray(SIM_SIGMA) * np.exp(0.2 * rng.standard_normal((n_draws, K, 4)))
    trans = np.asarray(SIM_P) * np.exp(0.5 * rng.standard_normal((n_draws, K, K)))
    trans /= trans.sum(axis=-1, keepdims=True)
    return mu, sigma, trans


@pytest.fixture(scope="module")
def sim():
    features, _ = simulate_stage_hmm(250, seed=3, n_missing=20)
    y0, mask = masked_observations(features.to_numpy())
    return features, y0, mask


def _paths(features, mu, sigma, trans, **kwargs):
    terms = draw_terms(features.to_numpy(), {"mu": mu, "sigma": sigma, "P": trans})
    return stage_paths(terms, mu.shape[0], **kwargs)


def test_paths_reproduce_smoothed_marginals_and_transition_counts(sim):
    features, y0, mask = sim
    mu, sigma, trans = _draws(3, seed=11)
    m = 1500
    paths = _paths(features, mu, sigma, trans, paths_per_draw=m, seed=5)
    assert paths.dtype == np.int8 and paths.shape == (3 * m, y0.shape[0])
    assert paths.min() >= 0 and paths.max() < K

    log_init = np.full(K, -np.log(K))
    ll = emission_loglik(y0, mask, mu, sigma)
    gammas, xis = [], []
    for s in range(3):
        g, xi, _, _ = kernels.smooth(log_init, np.log(trans[s]), np.ascontiguousarray(ll[s]))
        gammas.append(g)
        xis.append(xi)
    # pooled over draws: Pr(stage_t = k | y) = mean_s Pr(stage_t = k | y, theta_s)
    target = np.mean(gammas, axis=0)
    onehot = paths[:, :, None] == np.arange(K)
    freq = onehot.mean(axis=0)
    # per-cell Monte Carlo standard error of the pooled estimate (M paths per draw)
    se = np.sqrt(sum(g * (1 - g) for g in gammas) / (9 * m))
    assert np.all(np.abs(freq - target) <= 5 * se + 2e-3), np.abs(freq - target).max()

    # pairwise transitions: mean count of i -> j per path vs expected_transitions
    counts = np.zeros((paths.shape[0], K, K))
    for i in range(K):
        for j in range(K):
            counts[:, i, j] = ((paths[:, :-1] == i) & (paths[:, 1:] == j)).sum(axis=1)
    target_xi = np.mean(xis, axis=0)
    se_xi = counts.std(axis=0) / np.sqrt(paths.shape[0])
    assert np.all(np.abs(counts.mean(axis=0) - target_xi) <= 5 * se_xi + 0.02)
    # the same paths under one draw only would not match the pooled marginals everywhere
    assert np.abs(gammas[0] - target).max() > 0.05


def test_same_seed_same_paths_other_seed_other_paths(sim):
    features, _, _ = sim
    mu, sigma, trans = _draws(4, seed=2)
    a = _paths(features, mu, sigma, trans, paths_per_draw=3, seed=9)
    b = _paths(features, mu, sigma, trans, paths_per_draw=3, seed=9)
    c = _paths(features, mu, sigma, trans, paths_per_draw=3, seed=10)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_inputs_are_not_modified_and_bad_inputs_are_named(sim):
    features, _, _ = sim
    mu, sigma, trans = _draws(2, seed=4)
    copies = [x.copy() for x in (features.to_numpy(), mu, sigma, trans)]
    _paths(features, mu, sigma, trans, paths_per_draw=2, seed=0)
    for x, c in zip((features.to_numpy(), mu, sigma, trans), copies, strict=True):
        np.testing.assert_array_equal(x, c)
    with pytest.raises(ValueError, match="P must have shape"):
        _paths(features, mu, sigma, trans[:, :3, :3])
    with pytest.raises(ValueError, match="sigma must be finite"):
        _paths(features, mu, -sigma, trans)
    with pytest.raises(ValueError, match="sum to 1"):
        _paths(features, mu, sigma, trans * 2)
    with pytest.raises(ValueError, match="paths_per_draw"):
        _paths(features, mu, sigma, trans, paths_per_draw=0)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., K, D\)"):
        _paths(features.iloc[:, :3], mu, sigma, trans)


def test_sample_stage_paths_labels_and_thinning(sim):
    features, _, _ = sim
    fit = fake_fit(make_prepared(features), SIM_MU, SIM_SIGMA, SIM_P, n_chains=2, n_draws=15)
    da = sample_stage_paths(fit, n_draws=6, paths_per_draw=4, seed=1)
    assert da.dims == (SAMPLE, dims.TIME)
    assert da.shape == (24, len(features))
    assert da.dtype == np.int8
    assert (da[dims.TIME].values == fit["observed_data"][dims.TIME].values).all()
    assert json.loads(da.attrs["stages"]) == list(dims.LADDER)
    assert "Pr(stage_1..stage_T | y_1..y_T)" in da.attrs["long_name"]
    pairs = set(zip(da[dims.CHAIN].values.tolist(), da[dims.DRAW].values.tolist(), strict=True))
    assert len(pairs) == 6  # six distinct posterior draws, four paths each
    assert {c for c, _ in pairs} == {0, 1}  # thinned evenly across both chains
    again = sample_stage_paths(fit, n_draws=6, paths_per_draw=4, seed=1)
    np.testing.assert_array_equal(da.values, again.values)
    # all draws: 30 x 1
    assert sample_stage_paths(fit, n_draws=None, paths_per_draw=1).sizes[SAMPLE] == 30
    with pytest.raises(ValueError, match="n_draws"):
        sample_stage_paths(fit, n_draws=0)
