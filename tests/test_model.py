"""Tests of the stage model without sampling: emissions, the PyMC graph, k-means start (the
options and transition structures of ``ModelSpec``: ``test_spec.py``).

Everything here is fast (no MCMC): the model is compiled with PyTensor's default backend and
evaluated at random points of the unconstrained space.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from scipy.special import gammaln
from stressflow.inference.fitting.initialize import kmeans_start
from stressflow.models import dims
from stressflow.models.emissions import emission_loglik, masked_observations
from stressflow.models.pymc_model import build_model
from stressflow.models.spec import EMISSIONS, ModelSpec, allowed_transitions
from stressflow.models.spec import STRUCTURES as TRANSITIONS

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.conftest import simulate_stage_hmm
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from conftest import simulate_stage_hmm

K = len(dims.LADDER)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def features():
    """120 simulated days with a few missing cells and one day with nothing observed."""
    frame, _ = simulate_stage_hmm(120, seed=3, n_missing=15)
    frame.iloc[17, :] = np.nan
    return frame


def random_emission_params(rng, batch=(), n_feat=4):
    mu = rng.normal(0.0, 1.5, size=(*batch, K, n_feat))
    sigma = rng.gamma(2.0, 0.5, size=(*batch, K, n_feat)) + 0.05
    nu = rng.gamma(2.0, 5.0, size=(*batch, K)) + 0.5
    return mu, sigma, nu


def scipy_loglik(y, mu, sigma, nu=None):
    """Direct ``sum_{d observed} log f(y_td | mu_kd, sigma_kd)`` per (t, k), one draw."""
    n_t, _ = y.shape
    out = np.zeros((n_t, K))
    for t in range(n_t):
        obs = np.isfinite(y[t])
        for k in range(K):
            if nu is None:
                lp = stats.norm.logpdf(y[t, obs], loc=mu[k, obs], scale=sigma[k, obs])
            else:
                lp = stats.t.logpdf(y[t, obs], df=nu[k], loc=mu[k, obs], scale=sigma[k, obs])
            out[t, k] = lp.sum()
    return out


def pytensor_loglik(y0, mask, mu, sigma, nu):
    """Evaluate the PyTensor branch of ``emission_loglik`` on constants."""
    out = emission_loglik(
        pt.constant(y0),
        pt.constant(mask),
        pt.constant(mu),
        pt.constant(sigma),
        None if nu is None else pt.constant(nu),
        xp=pt,
        gammaln=pt.gammaln,
    )
    return out.eval()


def value_var_fn(model, names):
    """Compiled function from the model's unconstrained value variables to ``names``
    (deterministics and constrained free variables), evaluated on a point dict."""
    lookup = {v.name: v for v in model.unobserved_value_vars}
    outs = [lookup[n] for n in names]
    fn = pytensor.function(model.value_vars, outs, on_unused_input="ignore")
    order = [v.name for v in model.value_vars]

    def call(point):
        return fn(*[point[n] for n in order])

    return call


def random_points(model, rng, n, scale=2.0):
    """``n`` random points of the unconstrained space (Normal(initial point, scale))."""
    ip = model.initial_point()
    for _ in range(n):
        yield {k: v + rng.normal(0.0, scale, size=np.shape(v)) for k, v in ip.items()}


def start_point(model, start):
    """Unconstrained point of the model corresponding to constrained initial values."""
    for name, value in start.items():
        model.set_initval(model[name], value)
    return model.initial_point()


# --------------------------------------------------------------------------------------------
# emission_loglik
# --------------------------------------------------------------------------------------------


def test_masked_observations(features):
    y = features.to_numpy()
    y0, mask = masked_observations(y)
    assert y0.dtype == np.float64 and mask.dtype == np.float64
    assert_array_equal(mask, np.isfinite(y).astype(float))
    assert_array_equal(y0[mask == 1], y[np.isfinite(y)])
    assert (y0[mask == 0] == 0).all()


@pytest.mark.parametrize("emission", EMISSIONS)
def test_emission_loglik_numpy_matches_scipy(features, emission):
    rng = np.random.default_rng(1)
    mu, sigma, nu = random_emission_params(rng)
    nu = nu if emission == "student_t" else None
    y = features.to_numpy()
    y0, mask = masked_observations(y)
    got = emission_loglik(y0, mask, mu, sigma, nu, xp=np, gammaln=gammaln)
    assert got.shape == (len(y), K)
    assert_allclose(got, scipy_loglik(y, mu, sigma, nu), rtol=1e-10, atol=1e-10)
    # a day with nothing observed contributes exactly zero for every stage
    assert_array_equal(got[17], np.zeros(K))


@pytest.mark.parametrize("emission", EMISSIONS)
def test_emission_loglik_numpy_matches_pytensor(features, emission):
    rng = np.random.default_rng(2)
    mu, sigma, nu = random_emission_params(rng)
    nu = nu if emission == "student_t" else None
    y0, mask = masked_observations(features.to_numpy())
    want = emission_loglik(y0, mask, mu, sigma, nu, xp=np, gammaln=gammaln)
    got = pytensor_loglik(y0, mask, mu, sigma, nu)
    assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("emission", EMISSIONS)
def test_emission_loglik_batch_of_draws(features, emission):
    """Leading draw dims broadcast: each draw equals the single-draw call (both backends)."""
    rng = np.random.default_rng(3)
    mu, sigma, nu = random_emission_params(rng, batch=(5,))
    nu = nu if emission == "student_t" else None
    y = features.to_numpy()
    y0, mask = masked_observations(y)
    batch_np = emission_loglik(y0, mask, mu, sigma, nu, xp=np, gammaln=gammaln)
    batch_pt = pytensor_loglik(y0, mask, mu, sigma, nu)
    assert batch_np.shape == batch_pt.shape == (5, len(y), K)
    assert_allclose(batch_pt, batch_np, rtol=1e-10, atol=1e-10)
    for s in range(5):
        one = emission_loglik(
            y0, mask, mu[s], sigma[s], None if nu is None else nu[s], xp=np, gammaln=gammaln
        )
        assert_allclose(batch_np[s], one, rtol=1e-12, atol=1e-12)
    # spot-check two draws against scipy
    for s in (0, 4):
        ref = scipy_loglik(y, mu[s], sigma[s], None if nu is None else nu[s])
        assert_allclose(batch_np[s], ref, rtol=1e-10, atol=1e-10)


def test_emission_loglik_student_t_needs_gammaln(features):
    y0, mask = masked_observations(features.to_numpy())
    mu, sigma, nu = random_emission_params(np.random.default_rng(4))
    with pytest.raises(ValueError, match="gammaln"):
        emission_loglik(y0, mask, mu, sigma, nu, xp=np)


def test_student_t_approaches_gaussian_for_large_nu(features):
    y0, mask = masked_observations(features.to_numpy())
    mu, sigma, _ = random_emission_params(np.random.default_rng(5))
    gauss = emission_loglik(y0, mask, mu, sigma, None, xp=np)
    student = emission_loglik(y0, mask, mu, sigma, np.full(K, 1e8), xp=np, gammaln=gammaln)
    # the t log density differs from the normal one by O(z**4 / nu)
    assert_allclose(student, gauss, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# build_model: variables, dims, coords
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("emission", "transitions", "expected"),
    [
        ("gaussian", "full", {"mu_order", "mu_other", "sigma", "P"}),
        ("student_t", "full", {"mu_order", "mu_other", "sigma", "P", "nu"}),
        (
            "gaussian",
            "sequential",
            {"mu_order", "mu_other", "sigma"} | {f"P_row_{s}" for s in dims.LADDER},
        ),
    ],
)
def test_build_model_free_variables(features, emission, transitions, expected):
    model = build_model(features, ModelSpec.base(emission=emission, transitions=transitions))
    assert {v.name for v in model.free_RVs} == expected
    deterministics = {v.name for v in model.deterministics}
    assert "mu" in deterministics
    assert ("P" in deterministics) == (transitions == "sequential")
    assert "hmm_loglik" in {v.name for v in model.potentials}
    assert not model.observed_RVs  # the likelihood enters as a potential


@pytest.mark.parametrize("transitions", TRANSITIONS)
def test_build_model_dims_and_coords(features, transitions):
    model = build_model(features, ModelSpec.base(transitions=transitions))
    assert tuple(model.coords[dims.STAGE]) == dims.LADDER
    assert tuple(model.coords[dims.STAGE_FROM]) == dims.LADDER
    assert tuple(model.coords[dims.STAGE_TO]) == dims.LADDER
    assert tuple(model.coords[dims.FEATURE]) == dims.FEATURES
    assert_array_equal(pd.DatetimeIndex(model.coords[dims.TIME]), features.index)
    named = model.named_vars_to_dims
    assert named["mu"] == (dims.STAGE, dims.FEATURE)
    assert named["sigma"] == (dims.STAGE, dims.FEATURE)
    assert named["P"] == (dims.STAGE_FROM, dims.STAGE_TO)
    assert named["mu_order"] == (dims.STAGE,)
    ip = model.initial_point()
    fn = value_var_fn(model, ["mu", "sigma", "P"])
    mu, sigma, trans = fn(ip)
    assert mu.shape == sigma.shape == (K, len(dims.FEATURES))
    assert trans.shape == (K, K)


def test_build_model_student_t_nu_dims(features):
    model = build_model(features, ModelSpec.base(emission="student_t"))
    assert model.named_vars_to_dims["nu"] == (dims.STAGE,)
    assert np.isfinite(model.compile_logp()(model.initial_point()))


@pytest.mark.parametrize("order_feature", ["volatility", "spread", "impact"])
def test_ordering_constraint_at_random_points(features, order_feature):
    """mu[:, order_feature] is strictly increasing anywhere in the unconstrained space, and
    the other columns of mu are the free ``mu_other`` in feature order."""
    model = build_model(features, ModelSpec.base(order_feature=order_feature))
    fn = value_var_fn(model, ["mu", "mu_order", "mu_other"])
    d = list(dims.FEATURES).index(order_feature)
    others = [i for i in range(len(dims.FEATURES)) if i != d]
    rng = np.random.default_rng(6)
    for point in random_points(model, rng, 25, scale=3.0):
        mu, mu_order, mu_other = fn(point)
        assert np.all(np.diff(mu[:, d]) > 0), mu[:, d]
        assert_array_equal(mu[:, d], mu_order)
        assert_array_equal(mu[:, others], mu_other)


def test_single_feature_model(features):
    """Only the ordering feature: no ``mu_other``; logp finite; ordering holds."""
    model = build_model(features[["volatility"]], ModelSpec.base())
    assert {v.name for v in model.free_RVs} == {"mu_order", "sigma", "P"}
    fn = value_var_fn(model, ["mu"])
    for point in random_points(model, np.random.default_rng(7), 5):
        (mu,) = fn(point)
        assert mu.shape == (K, 1)
        assert np.all(np.diff(mu[:, 0]) > 0)
    assert np.isfinite(model.compile_logp()(model.initial_point()))


# --------------------------------------------------------------------------------------------
# transition structures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transitions", TRANSITIONS)
def test_transition_matrix_at_random_points(features, transitions):
    """P's rows sum to 1, forbidden entries are exactly 0, allowed ones are positive."""
    model = build_model(features, ModelSpec.base(transitions=transitions))
    allowed = allowed_transitions(transitions, K)
    fn = value_var_fn(model, ["P"])
    for point in random_points(model, np.random.default_rng(8), 25, scale=3.0):
        (trans,) = fn(point)
        assert_allclose(trans.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert np.all(trans[~allowed] == 0.0)
        assert np.all(trans[allowed] > 0.0)


@pytest.mark.parametrize("transitions", TRANSITIONS)
@pytest.mark.parametrize("emission", EMISSIONS)
def test_logp_finite_at_initial_point(features, emission, transitions):
    model = build_model(features, ModelSpec.base(emission=emission, transitions=transitions))
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    ip = model.initial_point()
    assert np.isfinite(logp(ip))
    assert np.all(np.isfinite(dlogp(ip)))
    for point in random_points(model, np.random.default_rng(9), 5, scale=0.5):
        assert np.isfinite(logp(point))


def test_logp_contains_hmm_likelihood(features):
    """The model's log density changes with the data (the HMM potential is wired in) and a
    missing value is skipped rather than treated as a number."""
    spec = ModelSpec.base()
    base = build_model(features, spec)
    shifted = features.copy()
    shifted.iloc[5, 1] += 3.0
    other = build_model(shifted, spec)
    ip = base.initial_point()
    assert base.compile_logp()(ip) != other.compile_logp()(ip)
    missing = features.copy()
    assert np.isfinite(missing.iloc[40, 2])
    missing.iloc[40, 2] = np.nan
    assert np.isfinite(build_model(missing, spec).compile_logp()(ip))


def test_unknown_order_feature(features):
    with pytest.raises(ValueError, match=r"order_feature 'vix' is not among the features"):
        build_model(features, ModelSpec.base(order_feature="vix"))


# --------------------------------------------------------------------------------------------
# kmeans_start
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kmeans_features():
    frame, _ = simulate_stage_hmm(400, seed=11, n_missing=20)
    return frame


@pytest.mark.parametrize("transitions", TRANSITIONS)
@pytest.mark.parametrize("emission", EMISSIONS)
def test_kmeans_start_valid(kmeans_features, emission, transitions):
    spec = ModelSpec.base(emission=emission, transitions=transitions)
    start = kmeans_start(kmeans_features, spec, seed=0)
    model = build_model(kmeans_features, spec)
    # exactly the model's free variables, with their shapes
    free = {v.name: v for v in model.free_RVs}
    assert set(start) == set(free)
    ip_shapes = {v.name: tuple(v.shape.eval()) for v in model.free_RVs}
    for name, value in start.items():
        assert np.shape(value) == ip_shapes[name], name
        assert np.all(np.isfinite(value)), name
    # increasing means on the ordering feature
    assert np.all(np.diff(start["mu_order"]) > 0)
    assert np.all(start["sigma"] > 0)
    # valid transition rows
    allowed = allowed_transitions(transitions, K)
    if transitions == "full":
        trans = start["P"]
        assert trans.shape == (K, K)
        assert np.all(trans > 0)
        assert_allclose(trans.sum(axis=1), 1.0, atol=1e-12)
    else:
        for i, stage in enumerate(dims.LADDER):
            row = start[f"P_row_{stage}"]
            assert row.shape == (allowed[i].sum(),)
            assert np.all(row > 0)
            assert_allclose(row.sum(), 1.0, atol=1e-12)
    if emission == "student_t":
        assert np.all(start["nu"] > 0)
    # the start is a valid point of the model (finite log density)
    point = start_point(model, start)
    assert np.isfinite(model.compile_logp()(point))
    (mu,) = value_var_fn(model, ["mu"])(point)
    assert_allclose(mu[:, 1], start["mu_order"], rtol=1e-10)


def test_kmeans_start_recovers_simulated_means(kmeans_features):
    """On well-separated simulated data the k-means start is near the truth."""
    try:
        from tests.conftest import SIM_MU
    except ImportError:
        from conftest import SIM_MU
    start = kmeans_start(kmeans_features, ModelSpec.base(), seed=0)
    assert_allclose(start["mu_order"], np.asarray(SIM_MU)[:, 1], atol=0.3)


def test_kmeans_start_deterministic_and_order_feature(kmeans_features):
    spec = ModelSpec.base(order_feature="spread")
    a = kmeans_start(kmeans_features, spec, seed=5)
    b = kmeans_start(kmeans_features, spec, seed=5)
    assert a.keys() == b.keys()
    for name in a:
        assert_array_equal(a[name], b[name])
    assert np.all(np.diff(a["mu_order"]) > 0)


def test_kmeans_start_needs_enough_complete_days(kmeans_features):
    sparse = kmeans_features.copy()
    sparse.iloc[30:, 0] = np.nan
    msg = r"only \d+ days have every feature observed; at least 40"
    with pytest.raises(ValueError, match=msg):
        kmeans_start(sparse, ModelSpec.base(), seed=0)
