"""The compulsion screen's EM harness (``bench/compulsion/em.py``): its transition masks, naming
rules and Dirichlet prior, and its EM against the library's on simulated data (two
implementations of the same MAP must agree)."""

from __future__ import annotations

import numpy as np
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
