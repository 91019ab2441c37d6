"""Tests of the kernels' compiled internals: K-tuple and array specialisations, the fast path
on long series, batches, input checks, the vectorised exp and the subnormal-message fallback.

Oracles: an independent log-space forward-backward and brute-force enumeration
(``tests/oracles.py``), numpy's exp.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.models.numerics import compiled, fast, kernels

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.kernel_problems import paths_both_ways, random_log_trans, random_problem
    from tests.oracles import brute_force, reference_forward_backward
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from kernel_problems import paths_both_ways, random_log_trans, random_problem
    from oracles import brute_force, reference_forward_backward

STRUCTURES = ["dense", "sequential"]

# --------------------------------------------------------------------------------------------
# compiled specialisations and the vectorised exp
# --------------------------------------------------------------------------------------------


def forward_fast(li, lt, ll):
    """The fast forward pass alone (K-tuple specialisation), see ``fast.forward_fast``."""
    zero, zero2, vec = fast.specialise(li.shape[0])
    trans, ok = fast.transitions(lt, zero2, vec)
    assert ok
    return fast.forward_fast(li, trans, ll, zero, vec)


def _array_specialisation(k):
    from stressflow.models.numerics.vecmath import vector_flag

    return np.zeros(k), np.zeros(k * k), vector_flag()


@pytest.mark.parametrize("k", [2, 3, 4, 5])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_tuple_and_array_specialisations_agree(k, structure):
    """The K-tuple specialisation (Python callers, static-K graphs) and the array one (graphs
    whose K is known only at run time) run the same code: same numbers."""
    li, lt, ll = random_problem(k, 3000, 40 + k, structure, scale=4.0)
    by_tuple = compiled.logp_and_grad(li, lt, ll, *fast.specialise(k))
    by_array = compiled.logp_and_grad(li, lt, ll, *_array_specialisation(k))
    for a, b in zip(by_tuple, by_array, strict=True):
        assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    ref_filtered, ref_smoothed, ref_log_norm, ref_xi = reference_forward_backward(li, lt, ll)
    assert_allclose(by_tuple[0], ref_log_norm.sum(), rtol=1e-11)
    assert_allclose(by_tuple[3], ref_smoothed, rtol=0, atol=1e-10)
    assert_allclose(by_tuple[2], ref_xi, rtol=1e-9, atol=1e-9)


def test_fast_path_is_taken_and_rescales_on_long_series():
    """A typical long series runs the linear-space path (the log-space path is ~10x slower)
    through many rescalings of the forward message, and matches the log-space oracle."""
    li, lt, ll = random_problem(4, 10_000, 77, "dense", scale=3.0)
    alpha, _, shift, ratio, logp, ok = forward_fast(li, lt, ll)
    assert ok
    # the unnormalised forward message shrinks below 1e-20 many times over 10,000 days
    assert np.log(ratio).sum() < 20 * np.log(1e-20)
    _, ref_smoothed, ref_log_norm, _ = reference_forward_backward(li, lt, ll)
    assert_allclose(logp, ref_log_norm.sum(), rtol=1e-11)
    assert_allclose(shift + np.log(ratio), ref_log_norm, rtol=1e-9, atol=1e-9)
    assert_allclose(kernels.smooth(li, lt, ll)[0], ref_smoothed, rtol=0, atol=1e-9)


def test_smooth_many_matches_smooth_per_draw():
    rng = np.random.default_rng(8)
    n_draws, n_t, k = 5, 300, 4
    li = np.full(k, -np.log(k))
    lt = np.stack([random_log_trans(k, rng, s) for s in ["dense", "sequential"] * 2 + ["dense"]])
    ll = rng.normal(scale=2.0, size=(n_draws, n_t, k))
    smoothed, filtered, log_norm = kernels.smooth_many(li, lt, ll)
    no_norm = kernels.smooth_many(li, lt, ll, log_norm=False)
    assert no_norm[2].shape == (n_draws, 0)
    for s in range(n_draws):
        one = kernels.smooth(li, lt[s], ll[s])
        assert_array_equal(smoothed[s], one[0])
        assert_array_equal(filtered[s], one[2])
        assert_array_equal(log_norm[s], one[3])
        assert_array_equal(no_norm[0][s], one[0])
    with pytest.raises(ValueError, match="log_trans"):
        kernels.smooth_many(li, lt[:2], ll)


def test_public_kernels_reject_mismatched_shapes():
    li, lt, ll = random_problem(3, 10, 1)
    with pytest.raises(ValueError, match="shapes"):
        kernels.logp_and_grad(li, lt, ll[:, :2])
    with pytest.raises(ValueError, match="T = 0"):
        kernels.smooth(li, lt, ll[:0])


def _exp_values():
    rng = np.random.default_rng(3)
    special = [-np.inf, np.inf, np.nan, 0.0, -0.0, 1e-310, -745.2, -708.4, 709.7, 1.0]
    return np.concatenate([rng.uniform(-740.0, 705.0, 20_003), special])


def _libmvec_expected():
    import platform
    import sys

    from llvmlite import binding

    features = binding.get_host_cpu_features()
    return (sys.platform.startswith("linux") and platform.machine() == "x86_64"
            and bool(features.get("avx2")) and bool(features.get("fma")))


def test_vector_maths_is_loaded_where_it_can_be():
    from stressflow.models.numerics import vecmath

    if not _libmvec_expected():
        pytest.skip("libmvec's AVX2 exp needs x86_64 Linux with AVX2 and FMA")
    assert vecmath.load_vector_math()
    assert vecmath.vector_flag() == (0,)


@pytest.mark.parametrize("vectorised", [True, False])
def test_vector_exp_matches_numpy(vectorised):
    """exp_inplace (libmvec's AVX2 exp, or the scalar loop) is within 4 ulp of numpy's exp,
    with IEEE special values, for lengths that are and are not multiples of the vector
    width."""
    from numba import njit
    from stressflow.models.numerics.vecmath import exp_inplace, vector_flag

    flag = vector_flag() if vectorised else ()
    if vectorised and flag == ():
        pytest.skip("libmvec is not usable on this machine (the scalar loop is tested)")

    @njit
    def run(x, flag):
        y = x.copy()
        exp_inplace(y, flag)
        return y

    x = _exp_values()
    for n in (x.size, x.size - 1, 3, 1):
        got, want = run(x[-n:], flag), np.exp(x[-n:])
        assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        assert_allclose(got[ok], want[ok], rtol=4 * np.finfo(float).eps, atol=0)
    grid = run(x[:20_000].reshape(-1, 4), flag)  # 2-d C-contiguous input
    assert_allclose(grid.ravel(), np.exp(x[:20_000]), rtol=4 * np.finfo(float).eps, atol=0)


@pytest.mark.parametrize("k", [4, 32])
def test_dense_transitions_keep_the_fast_path_under_extreme_emissions(k):
    """With every transition probability above exp(-300) (a panel's joint states), filtered
    probabilities far below 1e-280 and emission factors that underflow to 0 cannot change any
    later message by more than ~1e-150 relative, so the fast path keeps the call (before, a
    five-asset panel fell back to the log-space path on every evaluation, ~30x slower) and
    agrees with the exact log-space path and the reference to rounding."""
    rng = np.random.default_rng(k)
    li = np.full(k, -np.log(k))
    lt = np.log(0.95 * np.eye(k) + 0.05 * rng.dirichlet(np.ones(k), size=k))
    ll = rng.normal(scale=300.0, size=(2000, k))  # contrasts of hundreds to thousands of nats
    fast_out, exact = paths_both_ways(li, lt, ll)
    assert fast_out is not None, "dense transitions: the fast path must keep the call"
    assert fast_out[3].min() < 1e-280  # the old precision check would have handed it over
    assert_allclose(fast_out[0], exact[0], rtol=1e-13)
    for a, b in zip(fast_out[1:], exact[1:], strict=True):
        assert_allclose(a, b, rtol=0, atol=1e-12)
    logp, _, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)  # the public entry point
    assert_allclose(logp, exact[0], rtol=1e-13)
    assert_allclose(g_lik, exact[1], rtol=0, atol=1e-12)
    assert_allclose(g_trans, exact[2], rtol=0, atol=1e-10)
    # the independent reference sums in a different order: at log-likelihoods of +-1,000 its
    # own rounding is ~1e-10, so it checks the kernels to that level
    _, ref_smoothed, ref_log_norm, ref_xi = reference_forward_backward(li, lt, ll)
    assert_allclose(logp, ref_log_norm.sum(), rtol=1e-12)
    assert_allclose(g_lik, ref_smoothed, rtol=0, atol=1e-9)
    assert_allclose(g_trans, ref_xi, rtol=0, atol=1e-8)


def test_subnormal_forward_message_falls_back_to_log_space():
    """The unnormalised forward message may not pass through subnormal floats: here a sharp
    drop of the one-step normaliser would leave it at ~1e-320 with ~3 significant digits while
    the filtered probabilities still look fine; the fast path must hand over to the log-space
    path (found in review: the fast path returned -742.0422 instead of -742.0)."""
    li = np.log([0.5, 0.5])
    lt = np.log(np.array([[1 - 1e-200, 1e-200], [1e-200, 1 - 1e-200]]))
    ll = np.array([[0.0, -50.0], [0.0, -50.0], [-45.0, 0.0], [-697.0, 0.0], [0.0, -700.0]])
    bf = brute_force(li, lt, ll)
    assert not forward_fast(li, lt, ll)[-1]
    assert_allclose(kernels.log_marginal(li, lt, ll), bf.log_marginal, rtol=1e-13)
    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(logp, bf.log_marginal, rtol=1e-13)
    assert_allclose(g_lik, bf.smoothed, rtol=0, atol=1e-12)
    assert_allclose(g_trans, bf.expected_transitions, rtol=0, atol=1e-12)
