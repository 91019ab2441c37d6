"""Time-varying transition matrices in ``stressflow.models.numerics.kernels``.

``log_trans`` of shape ``(T-1, K, K)``: entry ``t-1`` is the matrix of the move into day ``t``
(days 0-based). Oracles: exhaustive enumeration of all K**T paths and an independent log-space
forward-backward (``tests/oracles.py``), finite differences, and statsmodels' Markov switching
regression with time-varying transition probabilities (its own Hamilton filter).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.models.numerics import compiled, fast, kernels

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.kernel_problems import paths_both_ways, sequential_mask
    from tests.oracles import (
        brute_force,
        brute_force_filtered,
        path_log_score,
        path_posterior,
        reference_forward_backward,
    )
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from kernel_problems import paths_both_ways, sequential_mask
    from oracles import (
        brute_force,
        brute_force_filtered,
        path_log_score,
        path_posterior,
        reference_forward_backward,
    )


def random_steps(k, n_steps, rng, structure="dense"):
    """``(n_steps, K, K)`` log transition matrices, each row a log-probability vector; the
    sequential structure forbids (``-inf``) all moves but i->i, i->i+1, i->i-1 and any->0."""
    mask = np.ones((k, k), bool) if structure == "dense" else sequential_mask(k)
    w = rng.gamma(0.7, size=(n_steps, k, k)) * mask
    with np.errstate(divide="ignore"):
        return np.log(w / w.sum(axis=2, keepdims=True))


def tv_problem(k, n_t, seed, structure="dense", scale=2.0):
    rng = np.random.default_rng(seed)
    li = np.log(rng.dirichlet(np.ones(k)))
    return li, random_steps(k, n_t - 1, rng, structure), rng.normal(scale=scale, size=(n_t, k))


CASES = [
    pytest.param(k, n_t, s, id=f"K{k}-T{n_t}-{s}")
    for (k, n_t), s in itertools.product([(3, 6), (2, 7), (4, 4)], ["dense", "sequential"])
]


def _seed(k, n_t, structure):
    return 500 + 100 * k + n_t + (structure == "sequential")


# --------------------------------------------------------------------------------------------
# brute-force enumeration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n_t", "structure"), CASES)
def test_time_varying_against_brute_force(k, n_t, structure):
    li, lt, ll = tv_problem(k, n_t, _seed(k, n_t, structure), structure)
    bf = brute_force(li, lt, ll)
    bf_filtered, bf_log_norm = brute_force_filtered(li, lt, ll)
    # the steps really differ: a constant matrix would not reproduce these marginals
    assert np.abs(np.exp(lt[0]) - np.exp(lt[1])).max() > 0.1

    assert_allclose(kernels.log_marginal(li, lt, ll), bf.log_marginal, rtol=0, atol=1e-10)
    filtered, log_norm = kernels.filter_probs(li, lt, ll)
    assert_allclose(filtered, bf_filtered, rtol=0, atol=1e-10)
    assert_allclose(log_norm, bf_log_norm, rtol=0, atol=1e-10)

    smoothed, xi, filtered2, log_norm2 = kernels.smooth(li, lt, ll)
    assert xi.shape == (n_t - 1, k, k)
    assert_allclose(smoothed, bf.smoothed, rtol=0, atol=1e-10)
    assert_allclose(xi, bf.pairwise, rtol=0, atol=1e-10)
    assert_allclose(xi.sum(axis=(1, 2)), 1.0, rtol=0, atol=1e-12)
    assert_allclose(filtered2, bf_filtered, rtol=0, atol=1e-10)
    assert_allclose(log_norm2, bf_log_norm, rtol=0, atol=1e-10)
    assert np.all(xi[~np.isfinite(lt)] == 0.0)

    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    assert g_trans.shape == lt.shape
    assert_allclose(logp, bf.log_marginal, rtol=0, atol=1e-10)
    assert_allclose(g_init, bf.smoothed[0], rtol=0, atol=1e-10)
    assert_allclose(g_trans, bf.pairwise, rtol=0, atol=1e-10)
    assert_allclose(g_lik, bf.smoothed, rtol=0, atol=1e-10)

    assert bf.map_gap > 1e-6, "test problem has a (near) tie for the MAP path"
    assert_array_equal(kernels.viterbi(li, lt, ll), bf.map_path)


@pytest.mark.parametrize(("k", "n_t", "structure"), CASES)
def test_time_varying_reference_oracle_matches_brute_force(k, n_t, structure):
    li, lt, ll = tv_problem(k, n_t, _seed(k, n_t, structure), structure)
    bf = brute_force(li, lt, ll)
    bf_filtered, bf_log_norm = brute_force_filtered(li, lt, ll)
    filtered, smoothed, log_norm, xi = reference_forward_backward(li, lt, ll)
    assert_allclose(filtered, bf_filtered, rtol=0, atol=1e-12)
    assert_allclose(smoothed, bf.smoothed, rtol=0, atol=1e-12)
    assert_allclose(log_norm, bf_log_norm, rtol=0, atol=1e-12)
    assert_allclose(xi, bf.pairwise, rtol=0, atol=1e-12)


def test_single_day_takes_an_empty_time_varying_matrix():
    li, lt, ll = tv_problem(3, 1, 3)
    assert lt.shape == (0, 3, 3)
    smoothed, xi, filtered, log_norm = kernels.smooth(li, lt, ll)
    expected = np.exp(li + ll[0] - np.logaddexp.reduce(li + ll[0]))
    assert xi.shape == (0, 3, 3)
    assert_allclose(smoothed[0], expected, rtol=1e-14)
    assert_allclose(filtered[0], expected, rtol=1e-14)
    logp, _, g_trans, _ = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(logp, np.logaddexp.reduce(li + ll[0]), rtol=1e-14)
    assert g_trans.shape == (0, 3, 3)
    assert kernels.viterbi(li, lt, ll)[0] == np.argmax(li + ll[0])


# --------------------------------------------------------------------------------------------
# gradient
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("structure", ["dense", "sequential"])
def test_time_varying_gradient(structure):
    k, n_t = 3, 6
    li, lt, ll = tv_problem(k, n_t, 41 + (structure == "dense"), structure)
    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(g_trans, brute_force(li, lt, ll).pairwise, rtol=0, atol=1e-10)
    h = 1e-5

    def fd(which, idx):
        args = [li.copy(), lt.copy(), ll.copy()]
        args[which][idx] += h
        up = kernels.log_marginal(*args)
        args[which][idx] -= 2 * h
        return (up - kernels.log_marginal(*args)) / (2 * h)

    n_checked = 0
    for which, arr, grad in ((0, li, g_init), (1, lt, g_trans), (2, ll, g_lik)):
        for idx in np.ndindex(arr.shape):
            if np.isfinite(arr[idx]):  # d/d(-inf) is not defined: such entries have no mass
                assert_allclose(grad[idx], fd(which, idx), rtol=0, atol=1e-7, err_msg=str(idx))
                n_checked += 1
    assert n_checked == np.isfinite(lt).sum() + li.size + ll.size
    assert np.all(g_trans[~np.isfinite(lt)] == 0.0)
    # dL/dlog_trans[t-1] differs between steps: each step has its own marginal
    assert np.abs(g_trans[0] - g_trans[1]).max() > 0.05


# --------------------------------------------------------------------------------------------
# constant log_trans broadcast to (T-1, K, K)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("structure", ["dense", "sequential"])
@pytest.mark.parametrize("n_t", [1, 2, 9, 2000])
def test_broadcast_constant_matches_constant(structure, n_t):
    rng = np.random.default_rng(n_t)
    k = 4
    lt = random_steps(k, 1, rng, structure)[0]
    li, ll = np.log(rng.dirichlet(np.ones(k))), rng.normal(scale=3.0, size=(n_t, k))
    lt3 = np.broadcast_to(lt, (n_t - 1, k, k))
    lt3_copy = lt3.copy()

    def close(a, b):
        assert_allclose(a, b, rtol=1e-12, atol=1e-14)

    close(kernels.log_marginal(li, lt3, ll), kernels.log_marginal(li, lt, ll))
    for a, b in zip(kernels.filter_probs(li, lt3, ll), kernels.filter_probs(li, lt, ll),
                    strict=True):
        close(a, b)
    s3, s2 = kernels.smooth(li, lt3, ll), kernels.smooth(li, lt, ll)
    for i in (0, 2, 3):
        close(s3[i], s2[i])
    close(s3[1].sum(axis=0), s2[1])
    g3, g2 = kernels.logp_and_grad(li, lt3, ll), kernels.logp_and_grad(li, lt, ll)
    for i in (0, 1, 3):
        close(g3[i], g2[i])
    close(g3[2].sum(axis=0), g2[2])
    assert_array_equal(kernels.viterbi(li, lt3, ll), kernels.viterbi(li, lt, ll))
    assert_array_equal(kernels.sample_paths(li, lt3, ll, 50, np.random.default_rng(1)),
                       kernels.sample_paths(li, lt, ll, 50, np.random.default_rng(1)))
    assert_array_equal(lt3, lt3_copy)  # inputs are not mutated


# --------------------------------------------------------------------------------------------
# long series: fast path against the log-space path and the reference
# --------------------------------------------------------------------------------------------


def test_long_series_fast_path_matches_log_space_and_reference():
    n_t, k = 10_000, 4
    rng = np.random.default_rng(12)
    li, lt = np.log(rng.dirichlet(np.ones(k))), random_steps(k, n_t - 1, rng, "sequential")
    ll = rng.normal(scale=3.0, size=(n_t, k))
    fast_out, exact = paths_both_ways(li, lt, ll)
    assert fast_out is not None, "the fast path should handle this series"
    assert_allclose(fast_out[0], exact[0], rtol=1e-11)
    for a, b in zip(fast_out[1:], exact[1:], strict=True):
        assert_allclose(a, b, rtol=0, atol=1e-10)
    ref_filtered, ref_smoothed, ref_log_norm, ref_xi = reference_forward_backward(li, lt, ll)
    logp, _, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(logp, ref_log_norm.sum(), rtol=1e-11)
    assert_allclose(g_lik, ref_smoothed, rtol=0, atol=1e-10)
    assert_allclose(g_trans, ref_xi, rtol=0, atol=1e-10)
    assert_allclose(kernels.filter_probs(li, lt, ll)[0], ref_filtered, rtol=0, atol=1e-10)


def extreme_tv_problem(seed=2025):
    """T = 10,000, K = 4: log-likelihoods up to 1e5 in magnitude, rows of -1e6 on some
    stages, very negative whole rows, missing days, per-step sequential matrices with -inf
    entries, and one step with a -700 entry (finite, so the log-space path must be used)."""
    rng = np.random.default_rng(seed)
    k, n_t = 4, 10_000
    ll = rng.normal(size=(n_t, k)) * 10.0 ** rng.uniform(0, 5, size=(n_t, 1))
    ll[rng.choice(n_t, 300, replace=False)] -= 1e5
    days = rng.choice(n_t, 500, replace=False)
    ll[days, rng.integers(0, k, size=500)] = -1e6
    ll[[0, 17, 18, 19, 5000, n_t - 1]] = 0.0
    lt = random_steps(k, n_t - 1, rng, "sequential")
    lt[4321, 3, 0] = -700.0  # allowed but essentially impossible on this step only
    lt[4321] -= np.logaddexp.reduce(lt[4321], axis=1, keepdims=True)
    li = np.array([np.log(0.7), np.log(0.3), -np.inf, -np.inf])
    return li, lt, ll


def test_extreme_time_varying_inputs_use_log_space_and_match_reference():
    li, lt, ll = extreme_tv_problem()
    n_t = ll.shape[0]
    assert not fast.transitions(lt, *fast.specialise(4)[1:])[1]  # the -700 step hands over
    lt_ok = lt.copy()
    lt_ok[4321, 3, 0] = -np.inf
    assert fast.transitions(lt_ok, *fast.specialise(4)[1:])[1]

    filtered, log_norm = kernels.filter_probs(li, lt, ll)
    smoothed, xi, _, _ = kernels.smooth(li, lt, ll)
    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    for name, arr in dict(filtered=filtered, log_norm=log_norm, smoothed=smoothed, xi=xi,
                          g_init=g_init, g_trans=g_trans, g_lik=g_lik).items():
        assert np.all(np.isfinite(arr)), f"{name}: {np.sum(~np.isfinite(arr))} non-finite"
    assert_allclose(xi.sum(axis=(1, 2)), 1.0, rtol=0, atol=1e-12)
    assert np.all(xi[~np.isfinite(lt)] == 0.0)
    path = kernels.viterbi(li, lt, ll)
    assert np.isfinite(path_log_score(li, lt, ll, path))
    assert logp >= path_log_score(li, lt, ll, path) - 1e-6 * abs(logp)

    ref_filtered, ref_smoothed, ref_log_norm, ref_xi = reference_forward_backward(li, lt, ll)
    assert_allclose(logp, ref_log_norm.sum(), rtol=1e-9)
    assert_allclose(log_norm, ref_log_norm, rtol=1e-6, atol=1e-6)
    assert_allclose(filtered, ref_filtered, rtol=0, atol=1e-6)
    assert_allclose(smoothed, ref_smoothed, rtol=0, atol=1e-6)
    assert_allclose(xi, ref_xi, rtol=0, atol=1e-6)
    assert xi.shape == (n_t - 1, 4, 4)


def test_time_varying_step_below_minus_600_falls_back_with_same_answer():
    """One step with a finite log_trans entry below -600 sends the call to the log-space path;
    the answer equals the fast path's on the same problem with that entry at -inf, up to the
    exp(-700) mass it carries."""
    n_t, k = 3000, 3
    rng = np.random.default_rng(4)
    li, lt, ll = np.log(np.full(k, 1 / k)), random_steps(k, n_t - 1, rng), rng.normal(size=(n_t, k))
    lt_low = lt.copy()
    lt_low[1000, 0, 2] = -650.0
    assert not fast.transitions(lt_low, *fast.specialise(k)[1:])[1]
    lt_off = lt_low.copy()
    lt_off[1000, 0, 2] = -np.inf
    a, b = kernels.logp_and_grad(li, lt_low, ll), kernels.logp_and_grad(li, lt_off, ll)
    for x, y in zip(a, b, strict=True):
        assert_allclose(x, y, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# forward-filtering backward-sampling
# --------------------------------------------------------------------------------------------


def test_time_varying_ffbs_joint_path_distribution():
    """The frequency of every whole path matches its exact posterior (chi-square test)."""
    from scipy.stats import chi2

    k, n_t, n_paths = 3, 4, 30_000
    li, lt, ll = tv_problem(k, n_t, 77, "sequential", scale=1.0)
    paths, _, prob = path_posterior(li, lt, ll)
    draws = kernels.sample_paths(li, lt, ll, n_paths, np.random.default_rng(3))
    codes = draws @ (k ** np.arange(n_t)[::-1])  # row index in itertools.product order
    assert_array_equal(paths[codes], draws)
    counts = np.bincount(codes, minlength=k**n_t)
    assert np.all(counts[prob == 0] == 0)
    assert (prob > 0.01).sum() >= 8  # several paths carry real mass
    expected = n_paths * prob
    big = expected >= 5
    stat = ((counts[big] - expected[big]) ** 2 / expected[big]).sum()
    assert chi2.sf(stat, big.sum() - 1) > 1e-3, stat
    # a constant matrix (step 0's everywhere) gives a clearly different distribution
    _, _, prob0 = path_posterior(li, lt[0], ll)
    stat0 = ((counts[big] - n_paths * prob0[big]) ** 2 / np.maximum(n_paths * prob0[big], 1)).sum()
    assert chi2.sf(stat0, big.sum() - 1) < 1e-6


# --------------------------------------------------------------------------------------------
# batches, specialisations, validation
# --------------------------------------------------------------------------------------------


def test_time_varying_smooth_many_and_array_specialisation():
    n_draws, n_t, k = 4, 200, 4
    rng = np.random.default_rng(8)
    li = np.full(k, -np.log(k))
    lt = np.stack([random_steps(k, n_t - 1, rng, s) for s in ["dense", "sequential"] * 2])
    ll = rng.normal(scale=2.0, size=(n_draws, n_t, k))
    smoothed, filtered, log_norm = kernels.smooth_many(li, lt, ll)
    for s in range(n_draws):
        one = kernels.smooth(li, lt[s], ll[s])
        assert_array_equal(smoothed[s], one[0])
        assert_array_equal(filtered[s], one[2])
        assert_array_equal(log_norm[s], one[3])
    from stressflow.models.numerics.vecmath import vector_flag

    by_tuple = compiled.logp_and_grad(li, lt[1], ll[1], *fast.specialise(k))
    by_array = compiled.logp_and_grad(li, lt[1], ll[1], np.zeros(k), np.zeros(k * k),
                                      vector_flag())
    for a, b in zip(by_tuple, by_array, strict=True):
        assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match=r"\(T-1, K, K\) = \(199, 4, 4\)"):
        kernels.smooth_many(li, lt[:, 1:], ll)


def test_time_varying_shape_errors_say_what_was_expected():
    li, lt, ll = tv_problem(3, 10, 1)
    with pytest.raises(ValueError, match=r"\(T-1, K, K\) = \(9, 3, 3\).*got \(10, 3, 3\)"):
        kernels.logp_and_grad(li, np.concatenate([lt, lt[:1]]), ll)
    with pytest.raises(ValueError, match=r"\(K, K\) = \(3, 3\)"):
        kernels.smooth(li, lt[:, :2], ll)
    with pytest.raises(ValueError, match="log_trans"):
        kernels.viterbi(li, lt[None], ll)
    with pytest.raises(ValueError, match="log_trans"):
        kernels.sample_paths(li, lt[1:], ll, 5, np.random.default_rng(0))
