"""Forward-filtering backward-sampling (``kernels.sample_paths``) with a constant transition
matrix: path frequencies against the exact smoothed marginals, pairwise counts and the
brute-force joint distribution of whole paths (``tests/oracles.py``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.models.numerics import kernels

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.kernel_problems import random_problem
    from tests.oracles import brute_force, path_log_score, reference_forward_backward
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from kernel_problems import random_problem
    from oracles import brute_force, path_log_score, reference_forward_backward

# --------------------------------------------------------------------------------------------
# forward-filtering backward-sampling
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ffbs_problem():
    k, n_t, n_paths = 4, 30, 20_000
    li, lt, ll = random_problem(k, n_t, 31, "sequential", scale=1.5)
    paths = kernels.sample_paths(li, lt, ll, n_paths, np.random.default_rng(42))
    return li, lt, ll, paths


def test_ffbs_marginals_and_transitions(ffbs_problem):
    li, lt, ll, paths = ffbs_problem
    n_paths, n_t = paths.shape
    k = li.shape[0]
    assert paths.dtype == np.int64
    assert paths.min() >= 0 and paths.max() < k

    smoothed, xi, _, _ = kernels.smooth(li, lt, ll)
    _, ref_smoothed, _, ref_xi = reference_forward_backward(li, lt, ll)
    assert_allclose(smoothed, ref_smoothed, atol=1e-12)
    assert_allclose(xi, ref_xi, atol=1e-12)
    assert (smoothed > 0.05).sum() > 2 * n_t  # the posterior is not degenerate

    # marginals: binomial standard errors, floored at one count
    emp = (paths[:, :, None] == np.arange(k)).mean(axis=0)
    se = np.sqrt(np.maximum(smoothed * (1 - smoothed), 1.0 / n_paths) / n_paths)
    assert np.all(np.abs(emp - smoothed) <= 5 * se)

    # pairwise transition counts per path; standard error from their sample variance
    pair = paths[:, :-1] * k + paths[:, 1:]
    counts = (pair[:, :, None] == np.arange(k * k)).sum(axis=1).reshape(n_paths, k, k)
    emp_xi = counts.mean(axis=0)
    se_xi = np.sqrt((counts.var(axis=0) + 1.0 / n_paths) / n_paths)
    assert np.all(np.abs(emp_xi - xi) <= 5 * se_xi)

    # forbidden moves and impossible initial stages never appear
    assert np.all(np.isfinite(lt[paths[:, :-1], paths[:, 1:]]))
    assert np.all(np.isfinite(li[paths[:, 0]]))


def test_ffbs_joint_path_distribution():
    """On a small problem the frequency of every whole path matches its exact posterior."""
    k, n_t, n_paths = 3, 4, 20_000
    li, lt, ll = random_problem(k, n_t, 77, "sequential", scale=1.0)
    bf = brute_force(li, lt, ll)
    paths = kernels.sample_paths(li, lt, ll, n_paths, np.random.default_rng(3))
    codes = paths @ (k ** np.arange(n_t)[::-1])
    emp = np.bincount(codes, minlength=k**n_t) / n_paths
    all_paths = np.array(list(itertools.product(range(k), repeat=n_t)))
    with np.errstate(invalid="ignore"):
        prob = np.exp(
            np.array([path_log_score(li, lt, ll, p) for p in all_paths]) - bf.log_marginal
        )
    assert_allclose(prob.sum(), 1.0, atol=1e-12)
    assert (prob > 0.01).sum() >= 10  # several paths carry real mass
    se = np.sqrt(np.maximum(prob * (1 - prob), 1.0 / n_paths) / n_paths)
    assert np.all(np.abs(emp - prob) <= 5 * se)
    assert np.all(emp[prob == 0] == 0)


def test_ffbs_reproducible(ffbs_problem):
    li, lt, ll, paths = ffbs_problem
    again = kernels.sample_paths(li, lt, ll, paths.shape[0], np.random.default_rng(42))
    assert_array_equal(again, paths)
    other = kernels.sample_paths(li, lt, ll, 200, np.random.default_rng(43))
    assert not np.array_equal(other, paths[:200])
