"""Helpers shared by the Op tests: the Python-linker mode and a finite-difference check of a
PyMC model's compiled gradient."""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose
from pytensor.compile.mode import Mode

PY_MODE = Mode(linker="py", optimizer="fast_run")  # runs HMMLogpOp.perform


def fd_check(model, fns, point, h=1e-6):
    """``(logp, grad)`` at ``point`` from ``fns = (compile_logp, compile_dlogp)``, after
    checking the gradient against central finite differences of the log density."""
    logp_fn, dlogp_fn = fns
    logp0 = logp_fn(point)
    grad = dlogp_fn(point)
    assert np.isfinite(logp0) and np.all(np.isfinite(grad))
    fd = []
    for v in model.value_vars:  # compile_dlogp concatenates the gradients in this order
        base = np.asarray(point[v.name], dtype=float)
        for idx in np.ndindex(base.shape):
            up, down = dict(point), dict(point)
            up[v.name] = base.copy()
            up[v.name][idx] += h
            down[v.name] = base.copy()
            down[v.name][idx] -= h
            fd.append((logp_fn(up) - logp_fn(down)) / (2 * h))
    fd = np.array(fd)
    assert grad.shape == fd.shape
    assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)
    return logp0, grad
