"""Tests for the PyTensor Op ``stressflow.models.numerics.ops.hmm_logp`` with a time-varying
``log_trans[T-1, K, K]`` (entry t-1: the move into day t): Python and numba backends against
the kernel, PyTensor's gradient check, and PyMC models compiled in the default mode and by
nutpie."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from numpy.testing import assert_allclose
from pytensor.gradient import verify_grad
from stressflow.models.numerics import kernels
from stressflow.models.numerics.ops import hmm_logp

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.pymc_checks import PY_MODE, fd_check
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from pymc_checks import PY_MODE, fd_check

# --------------------------------------------------------------------------------------------
# time-varying log_trans, shape (T-1, K, K)
# --------------------------------------------------------------------------------------------


def tv_inputs(k, n_t, seed):
    """Inputs with one log transition matrix per step (entry t-1: the move into day t)."""
    rng = np.random.default_rng(seed)
    li = np.log(rng.dirichlet(np.ones(k)))
    lt = np.log(rng.dirichlet(np.ones(k), size=(n_t - 1, k)))
    ll = rng.normal(scale=2.0, size=(n_t, k))
    return li, lt, ll


@pytest.fixture(scope="module")
def symbolic_tv():
    li, lt, ll = pt.vector("li"), pt.tensor3("lt"), pt.matrix("ll")
    logp = hmm_logp(li, lt, ll)
    return [li, lt, ll], [logp, *pytensor.grad(logp, [li, lt, ll])]


def test_time_varying_value_and_grad_match_kernel(symbolic_tv):
    li, lt, ll = tv_inputs(3, 8, 0)
    k_out = kernels.logp_and_grad(li, lt, ll)
    assert k_out[2].shape == (7, 3, 3)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        fns = {mode: pytensor.function(*symbolic_tv, mode=mode) for mode in (PY_MODE, "NUMBA")}
    for fn in fns.values():
        out = fn(li, lt, ll)
        assert out[2].shape == lt.shape
        for got, want in zip(out, k_out, strict=True):
            assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    # a wrongly sized time axis is refused by both backends
    for fn in fns.values():
        with pytest.raises(ValueError, match=r"log_trans"):
            fn(li, lt[1:], ll)


@pytest.mark.parametrize("seed", [0, 1])
def test_time_varying_verify_grad(seed):
    li, lt, ll = tv_inputs(3, 6, seed)
    verify_grad(
        hmm_logp,
        [li, lt, ll],
        rng=np.random.default_rng(200 + seed),
        n_tests=3,
        mode=PY_MODE,
        abs_tol=1e-6,
        rel_tol=1e-6,
    )


def test_time_varying_numba_static_and_dynamic_stage_count():
    """Static K (the K-tuple specialisation) and run-time K (the array one), ndim 3: same
    numbers as the kernel; the cache key differs from the constant case's."""
    from stressflow.models.numerics.ops import _cache_key

    li_v, lt_v, ll_v = tv_inputs(4, 300, 9)
    k_out = kernels.logp_and_grad(li_v, lt_v, ll_v)
    for static in (True, False):
        li = pt.tensor("li", shape=(4 if static else None,))
        lt = pt.tensor("lt", shape=(None, 4, 4) if static else (None, None, None))
        ll = pt.tensor("ll", shape=(None, 4) if static else (None, None))
        logp = hmm_logp(li, lt, ll)
        fn = pytensor.function([li, lt, ll], [logp, *pytensor.grad(logp, [li, lt, ll])],
                               mode="NUMBA")
        for got, want in zip(fn(li_v, lt_v, ll_v), k_out, strict=True):
            assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert _cache_key(4, 1, 3) != _cache_key(4, 1, 2)


def tv_pymc_model(n_t):
    """A 2-stage PyMC model whose transition matrix moves with a covariate (logit link)."""
    rng = np.random.default_rng(12)
    k = 2
    x = np.sin(np.arange(n_t - 1) / 4.0)  # covariate of the move into day t = 1..T-1
    y = rng.normal(np.where(np.arange(n_t) % 10 < 5, -1.0, 1.0), 1.0)
    with pm.Model() as model:
        base = pm.Normal("base", 0.0, 1.0, shape=(k, k))
        slope = pm.Normal("slope", 0.0, 1.0, shape=(k, k))
        logits = base[None] + slope[None] * x[:, None, None]
        log_trans = logits - pt.logsumexp(logits, axis=2, keepdims=True)
        mu = pm.Normal("mu", np.array([-1.0, 1.0]), 1.0)
        log_lik = pm.logp(pm.Normal.dist(mu[None, :], 1.0), y[:, None])
        pm.Potential("hmm", hmm_logp(np.full(k, -np.log(k)), log_trans, log_lik))
    point = {name: v + rng.normal(scale=0.3, size=np.shape(v))
             for name, v in model.initial_point().items()}
    return model, point


def test_time_varying_pymc_model_default_mode():
    """The default (numba) mode's gradient equals the Python linker's, which matches finite
    differences."""
    model, point = tv_pymc_model(30)
    fns = (model.compile_logp(mode=PY_MODE), model.compile_dlogp(mode=PY_MODE))
    _, grad = fd_check(model, fns, point)
    assert_allclose(model.compile_dlogp()(point), grad, rtol=1e-10, atol=1e-12)


def test_time_varying_pymc_model_compiled_by_nutpie():
    """nutpie's compiled log density (numba backend) gives the Python linker's value and
    gradient at the same point."""
    nutpie = pytest.importorskip("nutpie")
    model, point = tv_pymc_model(200)
    assert all(v.name in point for v in model.value_vars)  # no transformed variables
    compiled = nutpie.compile_pymc_model(model)
    x = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars])
    logp, grad = compiled.logp_func(x)
    assert_allclose(logp, model.compile_logp(mode=PY_MODE)(point), rtol=1e-12)
    assert_allclose(grad, model.compile_dlogp(mode=PY_MODE)(point), rtol=1e-10, atol=1e-12)
