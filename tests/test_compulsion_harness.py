"""The compulsion screen's EM harness (``bench/compulsion/em.py``): its transition masks, naming
rules and Dirichlet prior, and its EM against the library's on simulated data (two
implementations of the same MAP must agree)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SIM_MU, SIM_P
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.inference.fitting import initialize as ini
from stressflow.models.spec import ModelSpec

from bench.compulsion import em


def test_transition_masks():
    """sequential: stay, one step along the ladder, or back to orderly; discretionary free;
    gated: forced flow entered from margin pressure (and itself) only; gated_break: stage 5
    entered from orderly, fragile and itself only."""
    seq = em.allowed(em.Design(n_stages=5, transitions="sequential"))
    ladder = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1]], dtype=bool)
    assert_array_equal(seq[:4, :4], ladder)
    assert seq[4].all() and seq[:, 4].all()
    gated = em.allowed(em.Design(n_stages=5, transitions="gated"))
    assert_array_equal(gated[:, em.FF], [False, False, True, True, False])
    brk = em.allowed(em.Design(n_stages=6, transitions="gated_break"))
    assert_array_equal(brk[:, 5], [True, True, False, False, False, True])
    assert_array_equal(brk[5], [True, True, True, False, True, True])
    assert em.allowed(em.Design(n_stages=3)).all()


def test_duration_prior_mode():
    """The Dirichlet prior's mode of P[k, k] is 1 - 1/d_k on every allowed row."""
    durations = (250.0, 250.0, 20.0, 7.0, 40.0)
    design = em.Design(n_stages=5, transitions="gated", durations=durations, strength=1000.0)
    conc = em.prior_concentration(design)
    ok = em.allowed(design)
    assert_array_equal(conc > 0, ok)
    mode = (np.diag(conc) - 1.0) / np.where(ok, conc - 1.0, 0.0).sum(axis=1)
    assert_allclose(mode, 1.0 - 1.0 / np.array(durations))


def test_naming_rules():
    """k5: forced flow = the largest vol_surprise mean, the rest by volatility; k6break: the
    second-largest vol_surprise mean is stage 5 (the break)."""
    columns = ("volatility", "vol_surprise")
    # estimated stages: volatility and vol_surprise means
    mu = np.array([[0.6, 0.1], [-1.0, -0.5], [1.5, 1.4], [0.2, 0.7], [-0.3, -0.2], [0.9, 0.0]])
    perm = em.order_stages(em.Design(n_stages=6, order=("k6break", "vol_surprise",
                                                        "volatility")), mu, None, columns)
    # orderly, fragile, margin pressure, forced flow, discretionary, break
    assert_array_equal(perm, [1, 4, 0, 2, 5, 3])
    perm5 = em.order_stages(em.Design(n_stages=6, order=("k5", "vol_surprise", "volatility")),
                            mu, None, columns)
    assert_array_equal(perm5, [1, 4, 3, 2, 0, 5])
    # k5sum: forced flow = the largest sum of two means (here stage 0: 0.1 + 2.0 > 1.4 + 0.3)
    bond = np.array([[2.0], [0.0], [0.3], [0.1], [0.0], [0.2]])
    both = em.order_stages(
        em.Design(n_stages=6, order=("k5sum", ("vol_surprise", "bond_vol_surprise"),
                                     "volatility")),
        np.hstack([mu, bond]), None, (*columns, "bond_vol_surprise"))
    assert_array_equal(both, [1, 4, 3, 0, 5, 2])


def test_harness_em_matches_the_library_em(simulated_hmm):
    """On a simulated four-stage series the harness's EM (Design: full P, stickiness 20, named
    by volatility) and the library's EM for ModelSpec.base() reach the same optimum: the same
    log posterior and the same parameters, both close to the truth."""
    features = simulated_hmm[0].features
    columns = tuple(str(c) for c in features.columns)
    fit = em.fit_em(features.to_numpy(), columns,
                    em.Design(n_stages=4, order=("rank", "volatility")), seeds=(0,))
    search = ini.em_search(features, ModelSpec.base(), seed=0, n_starts=1, split_starts=False)
    # measured: the same optimum to 1e-11 (the two share the E step, not the M step)
    assert abs(fit.log_post - search.optima["log_posterior"].iloc[0]) < 1e-9 * abs(fit.log_post)
    for name, value in (("mu", fit.mu), ("sigma", fit.sigma), ("P", fit.P)):
        assert_allclose(value, search.point[name], rtol=0, atol=1e-8, err_msg=name)
    assert columns[1] == "volatility"
    assert_allclose(fit.mu[:, 1], np.asarray(SIM_MU)[:, 1], atol=0.15)
    assert_allclose(np.diag(fit.P), np.diag(SIM_P), atol=0.03)


def test_phases_give_a_negative_binomial_stay():
    """Forced flow as m phases in series (``dwell.expand``): rows of the expanded chain sum to
    1, forced flow is entered in phase 1, and the stay has the negative-binomial law
    ``Pr(stay = n) = C(n-1, m-1) (1-q)^m q^(n-m)`` (stay counted in days, n >= m); m = 1 is the
    plain chain."""
    from math import comb

    from bench.compulsion import dwell

    design = em.Design(n_stages=5, transitions="gated", durations=(250.0, 250.0, 20.0, 7.0, 40.0))
    trans = em.prior_concentration(design)
    trans = trans / trans.sum(axis=1, keepdims=True)
    ll = np.arange(10.0).reshape(2, 5)
    init, log_trans, _ = dwell.expand(np.zeros(5), trans, ll, 1, em.FF)
    assert_allclose(np.exp(log_trans), trans)
    m, q = 3, trans[em.FF, em.FF]
    init, log_trans, ll_x = dwell.expand(np.log(np.full(5, 0.2)), trans, ll, m, em.FF)
    big = np.exp(log_trans)
    assert_allclose(big.sum(axis=1), 1.0)
    assert_array_equal(ll_x[:, 5:], ll[:, [em.FF, em.FF]])
    assert np.isneginf(init[5:]).all() and big[2, 5:].sum() == 0.0  # entered in phase 1
    phases = [em.FF, 5, 6]
    inner = big[np.ix_(phases, phases)]
    stay_more = [np.linalg.matrix_power(inner, n)[0].sum() for n in range(40)]  # Pr(stay > n)
    pmf = -np.diff(stay_more)
    expected = [comb(n - 1, m - 1) * (1 - q) ** m * q ** (n - m) if n >= m else 0.0
                for n in range(1, 40)]
    assert_allclose(pmf, expected, atol=1e-14)
    # the duration prior covers the whole stay: 7 days in all, 7/3 per phase
    phased = em.Design(**{**design.__dict__, "ff_phases": m})
    conc = em.prior_concentration(phased)
    mode = (conc[em.FF, em.FF] - 1.0) / (conc[em.FF] - (conc[em.FF] > 0)).sum()
    assert_allclose(dwell.expected_stay(np.diag(np.full(5, mode)), m, em.FF), 7.0)
    with pytest.raises(ValueError, match="exceed one day"):  # 7 phases of a 7-day stay
        em.prior_concentration(em.Design(**{**design.__dict__, "ff_phases": 7}))


def test_phase_em_recovers_a_negative_binomial_stay():
    """On four stages simulated with forced flow (the highest-volatility stage) as 3 phases
    (stay 12 days on average, sd 6.0 against 11.5 for a geometric stay), the harness's EM with
    ``ff_phases=3`` recovers the phase stay q and the stages; it fits the data better than the
    one-state design (log posterior, same prior)."""
    from conftest import SIM_SIGMA, simulate_stage_hmm

    from bench.compulsion import dwell

    trans = np.array(SIM_P)
    trans[:3, em.FF] = 0.03  # about 90 forced-flow spells in 4,000 days
    trans[[0, 1, 2], [0, 1, 2]] = 0.95
    trans[em.FF] = [0.25 / 3, 0.25 / 3, 0.25 / 3, 0.75]
    k, m = 4, 3
    _, log_trans, _ = dwell.expand(np.zeros(k), trans, np.zeros((1, k)), m, em.FF)
    mu = np.vstack([SIM_MU, [SIM_MU[em.FF]] * (m - 1)])
    sigma = np.vstack([SIM_SIGMA, [SIM_SIGMA[em.FF]] * (m - 1)])
    features, path = simulate_stage_hmm(4000, 3, mu=mu, sigma=sigma, trans=np.exp(log_trans))
    path = dwell.collapse_paths(path, k, em.FF)
    y, columns = features.to_numpy(), tuple(str(c) for c in features.columns)
    order = ("rank", "volatility")
    phased = em.fit_em(y, columns, em.Design(n_stages=k, order=order, ff_phases=m), seeds=(0,))
    plain = em.fit_em(y, columns, em.Design(n_stages=k, order=order), seeds=(0,))
    assert abs(phased.P[em.FF, em.FF] - 0.75) < 0.04
    assert_allclose(np.diag(phased.P)[:3], 0.95, atol=0.02)
    assert_allclose(phased.mu, np.asarray(SIM_MU), atol=0.1)
    assert 0.2 < np.mean(path == em.FF) < 0.35  # forced flow on about a quarter of the days
    # measured: +23.5 with simulation seed 3 (+31, +35 with seeds 4, 5); the one-state design
    # puts P[FF, FF] at 0.92 (a geometric stay of 12 days)
    assert phased.log_post > plain.log_post + 10.0
    assert 0.88 < plain.P[em.FF, em.FF] < 0.95


def _ms_ar(seed, intercept, phi, noise, n=4000):
    """A four-stage path from ``SIM_P`` and two observables: ``a_t = intercept_k + phi_k
    a_{t-1} + noise e_t`` (20 values missing) and ``b_t ~ N(-1.5..1.5 by stage, 0.5^2)``."""
    rng = np.random.default_rng(seed)
    trans = np.asarray(SIM_P)
    path = np.zeros(n, dtype=int)
    for t in range(1, n):
        path[t] = rng.choice(4, p=trans[path[t - 1]])
    a = np.zeros(n)
    for t in range(1, n):
        a[t] = intercept[path[t]] + phi[path[t]] * a[t - 1] + noise * rng.standard_normal()
    b = np.array([-1.5, -0.5, 0.5, 1.5])[path] + 0.5 * rng.standard_normal(n)
    y = np.column_stack([a, b])
    y[rng.choice(n, 20, replace=False), 0] = np.nan
    return path, y


def test_lagged_emission_recovers_phi_and_the_stages():
    """Round 14's AR(1) emission (``Design.lag``, :mod:`bench.compulsion.lags`): on 4,000 days
    simulated from a four-stage MSI-AR with phi 0.7 on one observable (and none on the other),
    the ECM recovers phi, the intercepts, the stays and the stage path."""
    from stressflow.models.numerics import kernels

    trans = np.asarray(SIM_P)
    c = np.array([-0.6, -0.2, 0.2, 0.6])  # intercepts: levels -2, -2/3, 2/3, 2
    path, y = _ms_ar(7, c, np.full(4, 0.7), 0.4)
    design = em.Design(n_stages=4, order=("rank", "a"), lag=("a",))
    fit = em.fit_em(y, ("a", "b"), design, seeds=(0,))
    assert fit.phi[0] == pytest.approx(0.7, abs=0.03) and fit.phi[1] == 0.0
    assert_allclose(fit.mu[:, 0], c, atol=0.06)
    assert_allclose(np.diag(fit.P), np.diag(trans), atol=0.015)
    gamma = kernels.smooth(np.full(4, -np.log(4)), np.log(fit.P), em.log_lik(fit, y))[0]
    assert (gamma.argmax(axis=1) == path).mean() > 0.97
    with pytest.raises(ValueError, match="Gaussian, diagonal"):
        em.fit_em(y, ("a", "b"), em.Design(n_stages=4, order=("rank", "a"), lag=("a",), nu=5.0))


def test_stage_specific_ar_recovers_each_stages_phi():
    """Round 16's MS-AR with switching persistence (``Design.lag_stage``): on 4,000 days from
    a four-stage chain whose stages have phi 0.9, 0.6, 0.3 and 0.0 on one observable, the exact
    M step recovers every stage's phi and level, the stays and the stage path, and the fit's
    log-likelihood is that of :func:`em.log_lik`."""
    from stressflow.models.numerics import kernels

    trans = np.asarray(SIM_P)
    phi = np.array([0.9, 0.6, 0.3, 0.0])
    levels = np.array([-2.0, -0.7, 0.7, 2.0])
    path, y = _ms_ar(11, levels * (1 - phi), phi, 0.3)
    design = em.Design(n_stages=4, order=("rank", "b"), lag=("a",), lag_stage=True)
    fit = em.fit_em(y, ("a", "b"), design, seeds=(0,))
    assert fit.phi.shape == (4, 2) and not fit.phi[:, 1].any()
    assert_allclose(fit.phi[:, 0], phi, atol=0.05)
    assert_allclose(fit.mu[:, 0] / (1 - fit.phi[:, 0]), levels, atol=0.15)
    assert_allclose(np.diag(fit.P), np.diag(trans), atol=0.015)
    ll = em.log_lik(fit, y)
    gamma, _, _, log_norm = kernels.smooth(np.full(4, -np.log(4)), np.log(fit.P), ll)
    assert (gamma.argmax(axis=1) == path).mean() > 0.97
    assert float(log_norm.sum()) == pytest.approx(fit.loglik, rel=1e-6)
    # a coefficient held at 0 (``lag_zero``, round 16c): on the top stage, whose true phi is 0,
    # it costs nothing; on stage 1 (phi 0.6) it binds, and the others are still recovered
    design = em.Design(n_stages=4, order=("rank", "b"), lag=("a",), lag_stage=True)
    top = em.fit_em(y, ("a", "b"), em.Design(**{**design.__dict__, "lag_zero": (3,)}),
                    seeds=(0,))
    assert top.phi[3, 0] == 0.0 and top.loglik == pytest.approx(fit.loglik, abs=5.0)
    held = em.fit_em(y, ("a", "b"), em.Design(**{**design.__dict__, "lag_zero": (1,)}),
                     seeds=(0,))
    assert held.phi[1, 0] == 0.0 and held.loglik < fit.loglik - 50.0
    assert_allclose(held.phi[[0, 2, 3], 0], phi[[0, 2, 3]], atol=0.05)
    with pytest.raises(ValueError, match="lag_zero needs lag_stage"):
        em.fit_em(y, ("a", "b"), em.Design(n_stages=4, lag=("a",), lag_zero=(3,)))
