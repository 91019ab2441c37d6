"""Tests for the plain-array posterior layer ``stressflow.inference.postprocess.stages``."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.inference.postprocess import stages as posterior
from stressflow.models.emissions import emission_loglik, masked_observations
from stressflow.models.numerics import kernels

try:
    from tests.conftest import draw_terms
except ImportError:  # pytest's rootdir-less "prepend" import of tests/test_*.py
    from conftest import draw_terms


@pytest.mark.parametrize("shape", [(1000, 50, 4), (7, 13), (1, 5, 2), (2000, 2500, 2)])
def test_draw_quantiles_equal_numpy_quantile(shape):
    keep = np.random.default_rng(0).random(shape).astype(np.float32)
    keep[:, 0] = 0.25  # ties
    q = np.array([0.05, 0.5, 0.95])
    got = posterior.draw_quantiles(keep, q)
    assert got.dtype == np.float32 and got.shape == (3, *shape[1:])
    assert_array_equal(got, np.quantile(keep, q, axis=0).astype(np.float32))


def _problem(n_draws=150, n_t=400, seed=2):
    rng = np.random.default_rng(seed)
    k, d = 4, 3
    y = rng.normal(size=(n_t, d))
    y[rng.random((n_t, d)) < 0.05] = np.nan  # missing values
    y0, mask = masked_observations(y)
    mu = rng.normal(size=(n_draws, k, d))
    sigma = rng.gamma(4.0, 0.25, size=(n_draws, k, d))
    trans = rng.dirichlet(np.ones(k) + 20 * np.eye(k)[0], size=(n_draws, k))
    terms = draw_terms(y, {"mu": mu, "sigma": sigma, "P": trans})
    return terms, (y0, mask, mu, sigma, np.log(trans), np.full(k, -np.log(k)))


def test_stage_probabilities_match_per_draw_kernels():
    terms, (y0, mask, mu, sigma, log_trans, log_init) = _problem()
    chain = np.repeat(np.arange(3), 50)
    res = posterior.stage_probabilities(
        terms, 150, (len(y0), 4), chain, max_quantile_draws=40,
        keep_draws=True, chunk=16, filtered_groups={"top2": [2, 3]},
    )
    smoothed = np.empty((150, len(y0), 4))
    filtered = np.empty_like(smoothed)
    for s in range(150):
        ll = emission_loglik(y0, mask, mu[s], sigma[s])
        smoothed[s], _, filtered[s], ln = kernels.smooth(log_init, log_trans[s], ll)
        assert_allclose(res.log_norm[s], ln, rtol=1e-12)
    assert_allclose(res.smoothed_mean, smoothed.mean(0), rtol=1e-12, atol=1e-14)
    assert_allclose(res.filtered_mean, filtered.mean(0), rtol=1e-12, atol=1e-14)
    assert_allclose(res.chain_smoothed_mean[1], smoothed[50:100].mean(0), rtol=1e-12,
                    atol=1e-14)
    assert_allclose(res.filtered_last, filtered[:, -1], rtol=1e-12)
    assert_allclose(res.smoothed_draws, smoothed.astype(np.float32), rtol=1e-6)
    idx = posterior.quantile_draw_index(150, 40)
    q = np.quantile(filtered[idx], [0.05, 0.5, 0.95], axis=0)
    assert_allclose(res.filtered_q, q, rtol=1e-5, atol=1e-6)
    top2 = np.quantile(filtered[idx][:, :, 2:].sum(-1), [0.05, 0.5, 0.95], axis=0)
    assert_allclose(res.filtered_group_q["top2"], top2, rtol=1e-5, atol=1e-6)


def test_stage_probabilities_same_numbers_on_any_number_of_threads(monkeypatch):
    """Chunks run on a thread pool but are reduced in chunk order: bit-identical results."""
    terms, (y0, *_) = _problem(n_draws=90)
    chain = np.repeat(np.arange(2), 45)
    runs = []
    for n_threads in (1, 3):
        monkeypatch.setattr(posterior, "_n_threads", lambda n=n_threads: n)
        runs.append(posterior.stage_probabilities(terms, 90, (len(y0), 4), chain, chunk=8,
                                                  max_quantile_draws=30))
    for field in ("smoothed_mean", "filtered_mean", "smoothed_q", "filtered_q",
                  "chain_smoothed_mean", "log_norm", "filtered_last"):
        assert_array_equal(getattr(runs[0], field), getattr(runs[1], field))
