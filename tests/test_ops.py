"""Tests for the PyTensor Op ``stressflow.models.numerics.ops.hmm_logp`` with a constant
``log_trans[K, K]``: Python, numba and PyMC use (time-varying: ``tests/test_ops_tv.py``)."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from numpy.testing import assert_allclose
from pytensor.gradient import verify_grad
from pytensor.graph.traversal import io_toposort
from stressflow.models.numerics import kernels
from stressflow.models.numerics.ops import HMMLogpOp, hmm_logp

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.pymc_checks import PY_MODE, fd_check
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from pymc_checks import PY_MODE, fd_check


def random_inputs(k, n_t, seed):
    rng = np.random.default_rng(seed)
    li = np.log(rng.dirichlet(np.ones(k)))
    lt = np.log(rng.dirichlet(np.ones(k), size=k))
    ll = rng.normal(scale=2.0, size=(n_t, k))
    return li, lt, ll


def sequential_inputs(k, n_t, seed):
    """Inputs with -inf entries: i->i, i->i+1, i->i-1, any->0 allowed; starts in stage 0/1."""
    rng = np.random.default_rng(seed)
    i, j = np.indices((k, k))
    w = rng.gamma(1.0, size=(k, k)) * ((np.abs(i - j) <= 1) | (j == 0))
    w0 = np.r_[0.6, 0.4, np.zeros(k - 2)]
    with np.errstate(divide="ignore"):
        lt = np.log(w / w.sum(axis=1, keepdims=True))
        li = np.log(w0)
    ll = rng.normal(scale=2.0, size=(n_t, k))
    ll[[2, 3]] = 0.0  # missing days
    return li, lt, ll


@pytest.fixture(scope="module")
def symbolic():
    li, lt, ll = pt.vector("li"), pt.matrix("lt"), pt.matrix("ll")
    logp = hmm_logp(li, lt, ll)
    grads = pytensor.grad(logp, [li, lt, ll])
    return [li, lt, ll], [logp, *grads]


def compile_fn(symbolic, mode):
    inputs, outputs = symbolic
    return pytensor.function(inputs, outputs, mode=mode)


@pytest.fixture(scope="module")
def py_fn(symbolic):
    return compile_fn(symbolic, PY_MODE)


@pytest.fixture(scope="module")
def numba_fn(symbolic):
    with warnings.catch_warnings():
        # PyTensor falls back to object mode (with a warning) for Ops it cannot compile;
        # HMMLogpOp is registered with the numba backend, so that must not happen.
        warnings.filterwarnings("error", message=".*object mode.*")
        return compile_fn(symbolic, "NUMBA")


@pytest.fixture(scope="module")
def default_fn(symbolic):
    return compile_fn(symbolic, None)


# --------------------------------------------------------------------------------------------
# 7. value and gradient (Python perform)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [random_inputs, sequential_inputs])
def test_value_and_grad_match_kernel(py_fn, make):
    li, lt, ll = make(3, 8, 0)
    logp, g_li, g_lt, g_ll = py_fn(li, lt, ll)
    k_logp, k_li, k_lt, k_ll = kernels.logp_and_grad(li, lt, ll)
    assert np.ndim(logp) == 0
    assert_allclose(logp, kernels.log_marginal(li, lt, ll), rtol=1e-14)
    assert_allclose(logp, k_logp, rtol=1e-14)
    assert_allclose(g_li, k_li, rtol=1e-14, atol=1e-15)
    assert_allclose(g_lt, k_lt, rtol=1e-14, atol=1e-15)
    assert_allclose(g_ll, k_ll, rtol=1e-14, atol=1e-15)


def test_grad_is_scaled_by_output_gradient(py_fn):
    """d(c * logp) = c * d(logp): the Op's L_op multiplies by the incoming gradient."""
    li_v, lt_v, ll_v = random_inputs(3, 8, 3)
    li, lt, ll = pt.vector("li"), pt.matrix("lt"), pt.matrix("ll")
    cost = -2.5 * hmm_logp(li, lt, ll) + pt.sum(lt**2)
    g = pytensor.function([li, lt, ll], pytensor.grad(cost, [li, lt, ll]), mode=PY_MODE)
    _, k_li, k_lt, k_ll = kernels.logp_and_grad(li_v, lt_v, ll_v)
    g_li, g_lt, g_ll = g(li_v, lt_v, ll_v)
    assert_allclose(g_li, -2.5 * k_li, rtol=1e-13)
    assert_allclose(g_lt, -2.5 * k_lt + 2 * lt_v, rtol=1e-13)
    assert_allclose(g_ll, -2.5 * k_ll, rtol=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_verify_grad(seed):
    li, lt, ll = random_inputs(3, 8, seed)
    verify_grad(
        hmm_logp,
        [li, lt, ll],
        rng=np.random.default_rng(100 + seed),
        n_tests=3,
        mode=PY_MODE,
        abs_tol=1e-6,
        rel_tol=1e-6,
    )


# --------------------------------------------------------------------------------------------
# 8. numba backend
# --------------------------------------------------------------------------------------------


def test_numba_dispatch_is_nopython():
    """The Op's numba implementation is a nopython function that other jitted code can call
    (what nutpie's compiled log-density does), not an object-mode fallback."""
    import numba
    from pytensor.link.numba.dispatch.basic import numba_funcify

    node = hmm_logp(pt.vector(), pt.matrix(), pt.matrix()).owner
    impl = numba_funcify(node.op, node=node)
    assert isinstance(impl, numba.core.registry.CPUDispatcher)

    @numba.njit
    def caller(li, lt, ll):
        logp, g_init, g_trans, g_lik = impl(li, lt, ll)
        return logp[()], g_init, g_trans, g_lik

    li, lt, ll = sequential_inputs(4, 12, 2)
    logp, g_init, g_trans, g_lik = caller(li, lt, ll)
    k_logp, k_init, k_trans, k_lik = kernels.logp_and_grad(li, lt, ll)
    assert_allclose(logp, k_logp, rtol=1e-14)
    assert_allclose(g_init, k_init, rtol=1e-14, atol=1e-15)
    assert_allclose(g_trans, k_trans, rtol=1e-14, atol=1e-15)
    assert_allclose(g_lik, k_lik, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("make", [random_inputs, sequential_inputs])
def test_numba_mode_matches_python_and_default(py_fn, numba_fn, default_fn, make):
    li, lt, ll = make(3, 8, 11)
    ref = py_fn(li, lt, ll)
    for fn in (numba_fn, default_fn):
        out = fn(li, lt, ll)
        assert len(out) == 4
        for a, b in zip(out, ref, strict=True):
            assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert_allclose(ref[0], kernels.log_marginal(li, lt, ll), rtol=1e-14)


def test_numba_mode_non_contiguous_and_larger_inputs():
    """Transposed / strided inputs reach the numba kernel; a longer series and K = 4."""
    li_v, lt_v, ll_v = random_inputs(4, 200, 5)
    li = pt.vector("li")
    lt_t = pt.matrix("lt_t")  # fed the transpose; the graph transposes it back
    ll_full = pt.matrix("ll_full")  # every other row is used: a strided view
    logp = hmm_logp(li, lt_t.T, ll_full[::2])
    grads = pytensor.grad(logp, [li, lt_t, ll_full])
    ll_full_v = np.repeat(ll_v, 2, axis=0)
    ll_full_v[1::2] = 123.0  # rows that must be skipped
    args = (li_v, np.asfortranarray(lt_v.T), ll_full_v)
    outs = {
        mode: pytensor.function([li, lt_t, ll_full], [logp, *grads], mode=mode)(*args)
        for mode in ("NUMBA", PY_MODE)
    }
    k_logp, k_li, k_lt, k_ll = kernels.logp_and_grad(li_v, lt_v, ll_v)
    expected_ll = np.zeros_like(ll_full_v)
    expected_ll[::2] = k_ll
    for out in outs.values():
        assert_allclose(out[0], k_logp, rtol=1e-13)
        assert_allclose(out[1], k_li, rtol=1e-12, atol=1e-14)
        assert_allclose(out[2], k_lt.T, rtol=1e-12, atol=1e-14)
        assert_allclose(out[3], expected_ll, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------------
# 9. inside a PyMC model
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pymc_model():
    rng = np.random.default_rng(8)
    k = 3
    y = np.concatenate([rng.normal(-1, 1, 10), rng.normal(0.5, 1, 8), rng.normal(2, 1, 7)])
    y[[4, 12]] = np.nan  # missing days: zero rows of log_lik
    observed = ~np.isnan(y)
    y0 = np.where(observed, y, 0.0)
    with pm.Model() as model:
        init = pm.Dirichlet("init", a=np.ones(k))
        trans = pm.Dirichlet("trans", a=np.ones((k, k)) + 4 * np.eye(k))  # one row per stage
        mu = pm.Normal("mu", mu=np.array([-1.0, 0.0, 1.0]), sigma=2.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        log_lik = pm.logp(pm.Normal.dist(mu[None, :], sigma), y0[:, None])
        log_lik = pt.where(observed[:, None], log_lik, 0.0)
        pm.Potential("hmm", hmm_logp(pt.log(init), pt.log(trans), log_lik))
    return model


def _compile_on_values(model, outs):
    """Compile ``outs`` (built from random variables) as a function of the value variables."""
    outs_on_values = model.replace_rvs_by_values(outs if isinstance(outs, list) else [outs])
    return model.compile_fn(
        outs_on_values if isinstance(outs, list) else outs_on_values[0],
        inputs=model.value_vars,
        point_fn=True,
        mode=PY_MODE,
    )


@pytest.fixture(scope="module")
def pymc_fns(pymc_model):
    """``compile_logp``/``compile_dlogp`` with the Python linker, which runs the Op's perform.

    The default mode (the numba linker in PyTensor 3) costs ~25 s of numba compilation per
    function on a cold PyTensor cache, so it is exercised once, in
    test_pymc_default_mode_dlogp_matches_python_mode.
    """
    return pymc_model.compile_logp(mode=PY_MODE), pymc_model.compile_dlogp(mode=PY_MODE)


def test_pymc_logp_and_dlogp_at_initial_point(pymc_model, pymc_fns):
    point = pymc_model.initial_point()
    _, grad = fd_check(pymc_model, pymc_fns, point)
    assert np.any(grad != 0)
    pot = _compile_on_values(pymc_model, pymc_model.potentials[0])
    assert np.isfinite(pot(point)) and pot(point) < 0


def test_pymc_logp_and_dlogp_at_random_point(pymc_model, pymc_fns):
    rng = np.random.default_rng(9)
    start = pymc_model.initial_point()
    point = {k: v + rng.normal(scale=0.5, size=np.shape(v)) for k, v in start.items()}
    fd_check(pymc_model, pymc_fns, point)


def test_pymc_default_mode_dlogp_matches_python_mode(pymc_model, pymc_fns):
    """``model.compile_dlogp()`` in the default (numba) mode: finite and equal to the Python
    linker's gradient, which the tests above check against finite differences."""
    dlogp_default = pymc_model.compile_dlogp()
    rng = np.random.default_rng(10)
    start = pymc_model.initial_point()
    for point in (start, {k: v + rng.normal(scale=0.5, size=np.shape(v))
                          for k, v in start.items()}):
        grad = dlogp_default(point)
        assert np.all(np.isfinite(grad))
        assert_allclose(grad, pymc_fns[1](point), rtol=1e-10, atol=1e-12)


def test_pymc_potential_matches_kernel(pymc_model):
    """At a point, the Potential equals log_marginal evaluated on the Op's own inputs."""
    point = pymc_model.initial_point()
    pot = pymc_model.potentials[0]
    nodes = [n for n in io_toposort([], [pot]) if isinstance(n.op, HMMLogpOp)]
    assert len(nodes) == 1
    li, lt, ll = (np.asarray(x) for x in _compile_on_values(pymc_model, nodes[0].inputs)(point))
    assert li.shape == (3,) and lt.shape == (3, 3) and ll.shape == (25, 3)
    assert_allclose(np.exp(lt).sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(ll[[4, 12]] == 0.0)
    f_pot = _compile_on_values(pymc_model, pot)
    assert_allclose(f_pot(point), kernels.log_marginal(li, lt, ll), rtol=1e-12)


def test_static_and_dynamic_stage_count_give_the_same_numba_graph_result():
    """With K in the static shapes the numba graph runs the K-tuple specialisation, without it
    the array one; both match the kernel. The cache key tells them apart."""
    from stressflow.models.numerics.ops import _cache_key

    li_v, lt_v, ll_v = sequential_inputs(4, 500, 9)
    outs = []
    for static in (True, False):
        li = pt.tensor("li", shape=(4 if static else None,))
        lt = pt.tensor("lt", shape=(4, 4) if static else (None, None))
        ll = pt.tensor("ll", shape=(None, 4) if static else (None, None))
        logp = hmm_logp(li, lt, ll)
        fn = pytensor.function([li, lt, ll], [logp, *pytensor.grad(logp, [li, lt, ll])],
                               mode="NUMBA")
        outs.append(fn(li_v, lt_v, ll_v))
    k_out = kernels.logp_and_grad(li_v, lt_v, ll_v)
    for out in outs:
        for got, want in zip(out, k_out, strict=True):
            assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    keys = {_cache_key(3, 1, 2), _cache_key(4, 1, 2), _cache_key(-1, 1, 2), _cache_key(4, 0, 2),
            _cache_key(4, 1, 3)}
    assert len(keys) == 5
