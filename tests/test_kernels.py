"""Correctness tests for the HMM kernels in ``stressflow.models.numerics.kernels``.

Every test is deterministic (fixed seeds). Oracles: exhaustive enumeration of all K**T paths and
an independent log-space forward-backward (``tests/oracles.py``), plus hmmlearn.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.models.numerics import kernels

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.kernel_problems import random_log_trans, random_problem, sequential_mask
    from tests.oracles import (
        brute_force,
        brute_force_filtered,
        path_log_score,
        reference_forward_backward,
    )
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from kernel_problems import random_log_trans, random_problem, sequential_mask
    from oracles import (
        brute_force,
        brute_force_filtered,
        path_log_score,
        reference_forward_backward,
    )

SHAPES = [(2, 1), (2, 6), (3, 5), (4, 6)]
STRUCTURES = ["dense", "sequential"]
CASES = [
    pytest.param(k, n_t, s, id=f"K{k}-T{n_t}-{s}")
    for (k, n_t), s in itertools.product(SHAPES, STRUCTURES)
]


def _seed(k, n_t, structure):
    return 1000 * k + 10 * n_t + STRUCTURES.index(structure)


# --------------------------------------------------------------------------------------------
# 1. exact agreement with brute-force enumeration
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n_t", "structure"), CASES)
def test_against_brute_force(k, n_t, structure):
    li, lt, ll = random_problem(k, n_t, _seed(k, n_t, structure), structure)
    bf = brute_force(li, lt, ll)
    bf_filtered, bf_log_norm = brute_force_filtered(li, lt, ll)

    assert_allclose(kernels.log_marginal(li, lt, ll), bf.log_marginal, rtol=0, atol=1e-10)

    filtered, log_norm = kernels.filter_probs(li, lt, ll)
    assert_allclose(filtered, bf_filtered, rtol=0, atol=1e-10)
    assert_allclose(log_norm, bf_log_norm, rtol=0, atol=1e-10)

    smoothed, xi, filtered2, log_norm2 = kernels.smooth(li, lt, ll)
    assert_allclose(smoothed, bf.smoothed, rtol=0, atol=1e-10)
    assert_allclose(xi, bf.expected_transitions, rtol=0, atol=1e-10)
    assert_allclose(filtered2, bf_filtered, rtol=0, atol=1e-10)
    assert_allclose(log_norm2, bf_log_norm, rtol=0, atol=1e-10)
    assert np.all(xi[~np.isfinite(lt)] == 0.0)  # forbidden transitions have zero mass

    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(logp, bf.log_marginal, rtol=0, atol=1e-10)
    assert_allclose(g_init, bf.smoothed[0], rtol=0, atol=1e-10)
    assert_allclose(g_trans, bf.expected_transitions, rtol=0, atol=1e-10)
    assert_allclose(g_lik, bf.smoothed, rtol=0, atol=1e-10)

    assert bf.map_gap > 1e-6, "test problem has a (near) tie for the MAP path"
    path = kernels.viterbi(li, lt, ll)
    assert path.dtype == np.int64 and path.shape == (n_t,)
    assert_array_equal(path, bf.map_path)


@pytest.mark.parametrize(("k", "n_t", "structure"), CASES)
def test_reference_oracle_matches_brute_force(k, n_t, structure):
    """The log-space reference used by the larger tests is itself checked against enumeration."""
    li, lt, ll = random_problem(k, n_t, _seed(k, n_t, structure), structure)
    bf = brute_force(li, lt, ll)
    bf_filtered, bf_log_norm = brute_force_filtered(li, lt, ll)
    filtered, smoothed, log_norm, xi = reference_forward_backward(li, lt, ll)
    assert_allclose(filtered, bf_filtered, rtol=0, atol=1e-12)
    assert_allclose(smoothed, bf.smoothed, rtol=0, atol=1e-12)
    assert_allclose(log_norm, bf_log_norm, rtol=0, atol=1e-12)
    assert_allclose(xi, bf.expected_transitions, rtol=0, atol=1e-12)


def test_viterbi_ties_go_to_lower_index():
    k, n_t = 3, 4
    path = kernels.viterbi(np.zeros(k), np.zeros((k, k)), np.zeros((n_t, k)))
    assert_array_equal(path, np.zeros(n_t, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# 2. gradient against central finite differences
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n_t", "structure"), CASES)
def test_gradient_finite_differences(k, n_t, structure):
    li, lt, ll = random_problem(k, n_t, _seed(k, n_t, structure) + 7, structure)
    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(logp, kernels.log_marginal(li, lt, ll), rtol=0, atol=1e-12)
    h = 1e-5

    def fd(which, idx):
        args = [li.copy(), lt.copy(), ll.copy()]
        args[which][idx] += h
        up = kernels.log_marginal(*args)
        args[which][idx] -= 2 * h
        down = kernels.log_marginal(*args)
        return (up - down) / (2 * h)

    n_checked = 0
    for which, arr, grad in ((0, li, g_init), (1, lt, g_trans), (2, ll, g_lik)):
        for idx in np.ndindex(arr.shape):
            if not np.isfinite(arr[idx]):
                continue  # d/d(-inf) is not defined; such entries must carry zero mass
            assert_allclose(grad[idx], fd(which, idx), rtol=0, atol=1e-7, err_msg=str(idx))
            n_checked += 1
    assert n_checked >= np.isfinite(lt).sum() + np.isfinite(li).sum() + ll.size
    assert np.all(g_trans[~np.isfinite(lt)] == 0.0)
    assert np.all(g_init[~np.isfinite(li)] == 0.0)


# --------------------------------------------------------------------------------------------
# 3. against hmmlearn at fixed parameters
# --------------------------------------------------------------------------------------------


def _gaussian_diag_loglik(x, means, covars):
    """log N(x_t | means[k], diag(covars[k])) for every (t, k)."""
    diff = x[:, None, :] - means[None, :, :]
    return -0.5 * (
        np.sum(np.log(2 * np.pi * covars), axis=1)[None, :]
        + np.sum(diff**2 / covars[None, :, :], axis=2)
    )


@pytest.fixture(scope="module")
def hmmlearn_problem():
    hmm = pytest.importorskip("hmmlearn.hmm")
    k, d, n_t = 4, 4, 5000
    startprob = np.array([0.6, 0.3, 0.1, 0.0])
    mask = sequential_mask(k)
    transmat = np.where(
        mask,
        np.array(
            [
                [0.95, 0.05, 0.00, 0.00],
                [0.04, 0.90, 0.06, 0.00],
                [0.03, 0.07, 0.85, 0.05],
                [0.10, 0.00, 0.10, 0.80],
            ]
        ),
        0.0,
    )
    means = np.array(
        [[0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 0.5, 0.0], [2.0, 2.0, -1.0, 1.0], [-2.0, 1.0, 3.0, -1.0]]
    )
    covars = np.array(
        [[1.0, 0.5, 2.0, 1.0], [0.7, 1.2, 0.9, 1.5], [2.0, 1.0, 0.6, 0.8], [1.3, 0.4, 1.1, 2.5]]
    )
    model = hmm.GaussianHMM(
        n_components=k, covariance_type="diag", init_params="", params="", random_state=0
    )
    model.startprob_ = startprob
    model.transmat_ = transmat
    model.means_ = means
    model.covars_ = covars
    x, _ = model.sample(n_t, random_state=np.random.RandomState(12345))
    rng = np.random.default_rng(7)
    rows = rng.choice(n_t, size=20, replace=False)
    cols = rng.integers(0, d, size=20)
    x[rows, cols] = np.where(np.arange(20) % 2 == 0, 1e3, -1e3)
    with np.errstate(divide="ignore"):
        li, lt = np.log(startprob), np.log(transmat)
    ll = _gaussian_diag_loglik(x, means, covars)
    return model, x, li, lt, ll


def test_against_hmmlearn(hmmlearn_problem):
    model, x, li, lt, ll = hmmlearn_problem
    assert np.abs(ll).max() > 1e5  # the injected outliers really are extreme

    logp = kernels.log_marginal(li, lt, ll)
    assert_allclose(logp, model.score(x), rtol=1e-8)

    smoothed, xi, filtered, log_norm = kernels.smooth(li, lt, ll)
    assert_allclose(smoothed, model.predict_proba(x), rtol=0, atol=1e-8)
    assert_allclose(log_norm.sum(), logp, rtol=1e-12)

    ref_filtered, _, ref_log_norm, ref_xi = reference_forward_backward(li, lt, ll)
    assert_allclose(filtered, ref_filtered, rtol=0, atol=1e-8)
    assert_allclose(log_norm, ref_log_norm, rtol=1e-8, atol=1e-8)
    assert_allclose(xi, ref_xi, rtol=1e-8, atol=1e-6)

    hl_logprob, hl_path = model.decode(x, algorithm="viterbi")
    path = kernels.viterbi(li, lt, ll)
    assert_array_equal(path, hl_path)
    assert_allclose(path_log_score(li, lt, ll, path), hl_logprob, rtol=1e-8)


# --------------------------------------------------------------------------------------------
# 4. numerical robustness at T = 10,000
# --------------------------------------------------------------------------------------------


def extreme_problem(contrast, seed=2024):
    """T = 10,000, K = 4 with hostile but valid inputs.

    ``contrast="large"``: log_lik entries are independent with magnitudes up to 1e5, so the
    stages of one day differ by up to ~1e5. ``contrast="bounded"``: every entry of a day shares
    an offset of magnitude up to 1e5 and the stages differ only by O(10). Both have rows of -1e6
    on some stages, whole very negative rows, missing days (zero rows, including the first and
    last day and a run), a sequential transition matrix with -inf and -700 entries, and a
    log_init with -inf entries.
    """
    rng = np.random.default_rng(seed)
    k, n_t = 4, 10_000
    scale = 10.0 ** rng.uniform(0, 5, size=(n_t, 1))  # magnitudes from 1 to 1e5
    if contrast == "large":
        ll = rng.normal(size=(n_t, k)) * scale
    else:
        ll = rng.choice([-1.0, 1.0], size=(n_t, 1)) * scale + rng.normal(scale=3.0, size=(n_t, k))
    ll[rng.choice(n_t, 300, replace=False)] -= 1e5  # very negative but finite whole rows
    days = rng.choice(n_t, 500, replace=False)
    states = rng.integers(0, k, size=500)
    ll[days, states] = -1e6  # rows of -1e6 on some (never all) stages
    ll[days[:100], (states[:100] + 1) % k] = -1e6
    ll[[0, 17, 18, 19, 5000, n_t - 1]] = 0.0  # missing days
    ll[rng.choice(n_t, 200, replace=False)] = 0.0
    lt = random_log_trans(k, rng, "sequential")
    lt[3, 0] = -700.0  # allowed but essentially impossible (exp(-700) ~ 1e-304)
    lt[2, 1] = -700.0
    lt -= np.logaddexp.reduce(lt, axis=1, keepdims=True)
    li = np.array([np.log(0.7), np.log(0.3), -np.inf, -np.inf])
    return li, lt, ll


def check_extreme(li, lt, ll):
    n_t, k = ll.shape
    filtered, log_norm = kernels.filter_probs(li, lt, ll)
    smoothed, xi, filtered2, log_norm2 = kernels.smooth(li, lt, ll)
    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    lm = kernels.log_marginal(li, lt, ll)

    # a log marginal is never below the log joint of a single valid path
    path = kernels.viterbi(li, lt, ll)
    map_score = path_log_score(li, lt, ll, path)
    assert np.isfinite(map_score)
    assert lm >= map_score - 1e-6 * abs(map_score)

    for name, arr in dict(filtered=filtered, log_norm=log_norm, smoothed=smoothed, xi=xi,
                          g_init=g_init, g_trans=g_trans, g_lik=g_lik).items():
        assert np.all(np.isfinite(arr)), f"{name}: {np.sum(~np.isfinite(arr))} non-finite"
    assert np.isfinite(lm) and logp == lm
    assert_allclose(filtered.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_allclose(smoothed.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_allclose(g_lik.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_allclose(g_init.sum(), 1.0, rtol=0, atol=1e-12)
    assert_allclose(xi.sum(), n_t - 1, rtol=1e-12)
    assert np.all(filtered >= 0) and np.all(smoothed >= 0) and np.all(xi >= 0)
    assert np.all(xi[~np.isfinite(lt)] == 0.0)
    assert np.all(smoothed[0, ~np.isfinite(li)] == 0.0)
    assert_array_equal(filtered2, filtered)
    assert_array_equal(log_norm2, log_norm)

    ref_filtered, ref_smoothed, ref_log_norm, ref_xi = reference_forward_backward(li, lt, ll)
    assert np.isfinite(ref_log_norm.sum())
    assert_allclose(lm, ref_log_norm.sum(), rtol=1e-6)
    assert_allclose(log_norm, ref_log_norm, rtol=1e-6, atol=1e-6)
    assert_allclose(filtered, ref_filtered, rtol=0, atol=1e-6)
    assert_allclose(smoothed, ref_smoothed, rtol=0, atol=1e-6)
    assert_allclose(xi, ref_xi, rtol=1e-6, atol=1e-6)


def test_extreme_inputs_bounded_contrast():
    check_extreme(*extreme_problem("bounded"))


def test_extreme_inputs_large_contrast():
    check_extreme(*extreme_problem("large"))


def test_impossible_observation_at_last_step_gives_minus_inf():
    rng = np.random.default_rng(5)
    k, n_t = 4, 50
    li = np.array([0.0, -np.inf, -np.inf, -np.inf])
    lt = random_log_trans(k, rng, "sequential")
    ll = rng.normal(size=(n_t, k))
    ll[-1] = -np.inf
    assert kernels.log_marginal(li, lt, ll) == -np.inf
    assert kernels.logp_and_grad(li, lt, ll)[0] == -np.inf


@pytest.mark.parametrize("bad_day", [0, 1, 25])
def test_impossible_observation_mid_sequence_gives_minus_inf(bad_day):
    rng = np.random.default_rng(6)
    k, n_t = 4, 50
    li = np.array([0.0, -np.inf, -np.inf, -np.inf])  # starts in stage 0
    lt = random_log_trans(k, rng, "sequential")
    ll = rng.normal(size=(n_t, k))
    if bad_day == 1:
        # only stages 0 and 1 are reachable on day 1; both are impossible, 2 and 3 are not
        ll[1] = [-np.inf, -np.inf, 0.0, 0.0]
    else:
        ll[bad_day] = -np.inf
    assert kernels.log_marginal(li, lt, ll) == -np.inf
    assert kernels.logp_and_grad(li, lt, ll)[0] == -np.inf
    _, log_norm = kernels.filter_probs(li, lt, ll)
    assert log_norm.sum() == -np.inf


def test_underflowed_filtered_stage_is_not_lost():
    li = np.log([0.5, 0.5])
    lt = np.array([[0.0, -np.inf], [np.log(0.5), np.log(0.5)]])  # 0 -> 1 forbidden
    ll = np.array([[0.0, -1000.0], [-1000.0, 0.0], [-1000.0, 0.0]])
    # the path (1, 1, 1) dominates: log .5 - 1000 + 2 log .5; (0, 0, 0) scores log .5 - 2000
    bf = brute_force(li, lt, ll)
    assert_allclose(bf.log_marginal, -1000 + 3 * np.log(0.5), rtol=1e-12)
    assert_allclose(bf.smoothed, [[0, 1], [0, 1], [0, 1]], rtol=0, atol=1e-12)
    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(logp, bf.log_marginal, rtol=1e-12)
    assert_allclose(kernels.log_marginal(li, lt, ll), bf.log_marginal, rtol=1e-12)
    assert_allclose(kernels.smooth(li, lt, ll)[0], bf.smoothed, rtol=0, atol=1e-10)
    assert_allclose(g_lik, bf.smoothed, rtol=0, atol=1e-10)
    assert_allclose(g_trans, bf.expected_transitions, rtol=0, atol=1e-10)
    paths = kernels.sample_paths(li, lt, ll, 100, np.random.default_rng(0))
    assert np.all(paths == 1)


# --------------------------------------------------------------------------------------------
# 5. missing days
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("structure", STRUCTURES)
def test_missing_days_propagate_filter(structure):
    k, n_t = 4, 40
    li, lt, ll = random_problem(k, n_t, 99, structure)
    missing = [0, 5, 6, 7, 20, n_t - 1]
    ll[missing] = 0.0
    filtered, log_norm = kernels.filter_probs(li, lt, ll)
    p = np.exp(lt)
    assert_allclose(filtered[0], np.exp(li), rtol=0, atol=1e-14)
    for t in missing[1:]:
        assert_allclose(filtered[t], filtered[t - 1] @ p, rtol=0, atol=1e-14)
    assert_allclose(log_norm[missing], 0.0, rtol=0, atol=1e-14)
    # a fully missing series carries no information: logp = 0, smoothed = prior marginals
    ll0 = np.zeros((n_t, k))
    assert_allclose(kernels.log_marginal(li, lt, ll0), 0.0, atol=1e-12)
    smoothed0 = kernels.smooth(li, lt, ll0)[0]
    prior = np.exp(li)
    for t in range(n_t):
        assert_allclose(smoothed0[t], prior, rtol=0, atol=1e-12)
        prior = prior @ p


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", ["filter_probs", "smooth", "log_marginal", "viterbi"])
def test_nan_or_plus_inf_inputs_are_refused_with_their_place(name, bad):
    """A NaN or +inf log-likelihood cell is an error naming where it is (not NaN rows);
    -inf (an impossible observation under a stage) stays allowed."""
    rng = np.random.default_rng(0)
    log_lik = rng.normal(size=(30, 3))
    log_init = np.full(3, -np.log(3))
    log_trans = np.log(np.full((3, 3), 0.1) + 0.7 * np.eye(3))
    fn = getattr(kernels, name)
    broken = log_lik.copy()
    broken[7, 2] = bad
    expect = r"log_lik has 1 NaN or \+inf entry \(first at index \(7, 2\)"
    with pytest.raises(ValueError, match=expect):
        fn(log_init, log_trans, broken)
    impossible = log_lik.copy()
    impossible[7, 2] = -np.inf
    fn(log_init, log_trans, impossible)
    trans = log_trans.copy()
    trans[0, 1] = bad
    with pytest.raises(ValueError, match="log_trans has 1 NaN"):
        fn(log_init, trans, log_lik)


@pytest.mark.parametrize("k", [7, 16, 27])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_array_work_vectors_above_the_unrolled_size(k, structure):
    """K above ``MAX_UNROLLED_STAGES`` (the joint states of a panel model) runs the fast path
    on array work vectors; it must agree with the log-space reference like the tuple path."""
    from stressflow.models.numerics import fast

    assert k > fast.MAX_UNROLLED_STAGES and isinstance(fast.specialise(k)[0], np.ndarray)
    li, lt, ll = random_problem(k, 40, 7 * k + STRUCTURES.index(structure), structure)
    filtered, smoothed, log_norm, xi = reference_forward_backward(li, lt, ll)
    got_smoothed, got_xi, got_filtered, got_log_norm = kernels.smooth(li, lt, ll)
    assert_allclose(got_filtered, filtered, rtol=0, atol=1e-10)
    assert_allclose(got_smoothed, smoothed, rtol=0, atol=1e-10)
    assert_allclose(got_log_norm, log_norm, rtol=0, atol=1e-10)
    assert_allclose(got_xi, xi, rtol=0, atol=1e-10)
    logp, g_init, g_trans, g_lik = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(logp, log_norm.sum(), rtol=0, atol=1e-9)
    assert_allclose(g_lik, smoothed, rtol=0, atol=1e-10)
    assert_allclose(g_trans, xi, rtol=0, atol=1e-10)
