"""Correctness tests for the HMM kernels in ``stressflow.models.numerics.kernels``.

Every test is deterministic (fixed seeds). Oracles: exhaustive enumeration of all K**T paths and
an independent log-space forward-backward (``tests/oracles.py``), plus hmmlearn.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.models.numerics import compiled, fast, kernels

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.oracles import (
        brute_force,
        brute_force_filtered,
        path_log_score,
        reference_forward_backward,
    )
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from oracles import (
        brute_force,
        brute_force_filtered,
        path_log_score,
        reference_forward_backward,
    )

# --------------------------------------------------------------------------------------------
# parameter builders
# --------------------------------------------------------------------------------------------


def sequential_mask(k):
    """Stress builds one stage at a time: i->i, i->i+1, i->i-1 and any -> 0 are allowed."""
    i, j = np.indices((k, k))
    return (np.abs(i - j) <= 1) | (j == 0)


def random_log_trans(k, rng, structure="dense"):
    mask = np.ones((k, k), bool) if structure == "dense" else sequential_mask(k)
    w = rng.gamma(1.0, size=(k, k)) * mask
    with np.errstate(divide="ignore"):
        return np.log(w / w.sum(axis=1, keepdims=True))


def random_log_init(k, rng, structure="dense"):
    w = rng.gamma(1.0, size=k)
    if structure == "sequential" and k > 2:
        w[2:] = 0.0  # stress starts in one of the first two stages
    with np.errstate(divide="ignore"):
        return np.log(w / w.sum())


def random_problem(k, n_t, seed, structure="dense", scale=2.0):
    rng = np.random.default_rng(seed)
    li = random_log_init(k, rng, structure)
    lt = random_log_trans(k, rng, structure)
    ll = rng.normal(scale=scale, size=(n_t, k))
    return li, lt, ll


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


# --------------------------------------------------------------------------------------------
# 6. forward-filtering backward-sampling
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


# --------------------------------------------------------------------------------------------
# 8. compiled specialisations and the vectorised exp
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
