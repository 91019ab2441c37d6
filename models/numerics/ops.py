"""PyTensor Op for the HMM marginal log-likelihood with its exact forward-backward gradient.

``hmm_logp(log_init, log_trans, log_lik)`` is ``log p(y_0..y_{T-1})`` with the stages summed
out; ``log_trans`` is constant, ``(K, K)``, or time-varying, ``(T-1, K, K)`` with entry ``t-1``
for the move into day ``t`` (see :mod:`stressflow.models.numerics.kernels`). Its gradient is not
obtained by differentiating through a ``scan``: one forward-backward pass
(:func:`stressflow.models.numerics.kernels.logp_and_grad`) returns the log-likelihood together
with its partial derivatives, which are posterior marginals (see that function). The Op
therefore has four outputs, ``(logp, dlogp/dlog_init, dlogp/dlog_trans, dlogp/dlog_lik)``, the
second of the shape of ``log_trans``; its ``pullback`` reuses the last three, so PyTensor merges
the forward and gradient computations into a single call of the kernel per
log-density-and-gradient evaluation.

The Op runs in Python mode (``perform``) and is registered with PyTensor's numba backend, so
nutpie's numba-compiled log-density inlines the same kernel without a Python callback. There
the kernel is specialised on the number of stages K when the inputs' static shapes give it (the
stage model's always do), with its messages in registers; with K known only at run time it
uses the generic specialisation, about 2x slower, with the same numbers. The numba
implementation is built per node for the ``log_trans`` form of that node (ndim 2 or 3), and
the form is part of its cache key.
"""

from __future__ import annotations

import functools
import sys
import zlib
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import (
    numba_njit,
    register_funcify_default_op_cache_key,
)
from stressflow.models.numerics import compiled, fast, kernels, logspace, steps, vecmath
from stressflow.models.numerics.vecmath import vector_flag

__all__ = ["HMMLogpOp", "hmm_logp"]


class HMMLogpOp(Op):
    """``(log_init[K], log_trans, log_lik[T, K]) -> (logp, g_init, g_trans, g_lik)``.

    ``logp = log p(y_0..y_{T-1})``; ``g_init[k] = Pr(stage_0 = k | y_0..y_{T-1})``;
    ``g_lik[t, k] = Pr(stage_t = k | y_0..y_{T-1})``; ``g_trans`` has the shape of
    ``log_trans``: for ``log_trans[K, K]``, ``g_trans[i, j] = sum_{t=1..T-1} Pr(stage_{t-1} =
    i, stage_t = j | y_0..y_{T-1})``; for ``log_trans[T-1, K, K]``, ``g_trans[t-1, i, j] =
    Pr(stage_{t-1} = i, stage_t = j | y_0..y_{T-1})``. Use :func:`hmm_logp` rather than this
    class.
    """

    __props__ = ()

    def make_node(self, log_init, log_trans, log_lik):
        log_init = pt.as_tensor_variable(log_init).astype("float64")
        log_trans = pt.as_tensor_variable(log_trans).astype("float64")
        log_lik = pt.as_tensor_variable(log_lik).astype("float64")
        if log_init.ndim != 1 or log_trans.ndim not in (2, 3) or log_lik.ndim != 2:
            raise ValueError(
                "hmm_logp expects log_init[K], log_trans[K, K] or [T-1, K, K], log_lik[T, K]; "
                "got ndims "
                f"{log_init.ndim}, {log_trans.ndim}, {log_lik.ndim}"
            )
        outputs = [
            pt.scalar(dtype="float64"),
            log_init.type(),
            log_trans.type(),
            log_lik.type(),
        ]
        return Apply(self, [log_init, log_trans, log_lik], outputs)

    def perform(self, node, inputs, output_storage):
        logp, g_init, g_trans, g_lik = kernels.logp_and_grad(
            *(np.ascontiguousarray(x, dtype=np.float64) for x in inputs)
        )
        output_storage[0][0] = np.asarray(logp, dtype=np.float64)
        output_storage[1][0] = g_init
        output_storage[2][0] = g_trans
        output_storage[3][0] = g_lik

    def infer_shape(self, node, input_shapes):
        return [(), input_shapes[0], input_shapes[1], input_shapes[2]]

    def pullback(self, inputs, outputs, output_grads):
        # Only the log-likelihood output is differentiable: the gradient outputs are used by
        # hmm_logp's gradient alone, so second derivatives are not provided.
        gz = output_grads[0]
        _, g_init, g_trans, g_lik = outputs
        return [gz * g_init, gz * g_trans, gz * g_lik]


_hmm_logp_op = HMMLogpOp()


def hmm_logp(log_init, log_trans, log_lik):
    """Symbolic ``log p(y_0..y_{T-1})`` of an HMM with the stages marginalised out.

    Parameters
    ----------
    log_init : tensor, shape (K,)
        ``log Pr(stage_0 = k)``.
    log_trans : tensor, shape (K, K) or (T-1, K, K)
        Constant: ``log_trans[i, j] = log Pr(stage_t = j | stage_{t-1} = i)``; time-varying:
        ``log_trans[t-1, i, j] = log Pr(stage_t = j | stage_{t-1} = i)``, t = 1..T-1 (days
        0-based). ``-inf`` for forbidden moves.
    log_lik : tensor, shape (T, K)
        ``log p(y_t | stage_t = k)``; a zero row for a day with no observation.

    Returns
    -------
    scalar tensor
        The marginal log-likelihood ``log p(y_0..y_{T-1})``, differentiable in all three
        inputs (the gradient in ``log_trans`` has its shape).
    """
    return _hmm_logp_op(log_init, log_trans, log_lik)[0]


@functools.cache
def _source_crc() -> int:
    """CRC32 of every source the compiled kernel depends on, and of this module (read once
    per process)."""
    crc = 0
    for module in (kernels, compiled, fast, logspace, steps, vecmath, sys.modules[__name__]):
        crc = zlib.crc32(Path(module.__file__).read_bytes(), crc)
    return crc


def _cache_key(n_stages: int, vectorised: int, trans_ndim: int) -> int:
    """CRC32 of the kernel sources (see :func:`_source_crc`), the number of stages, whether the
    vector exp is used and the ndim of ``log_trans`` (2 constant, 3 time-varying): part of
    PyTensor's numba cache key, so a compiled log density cached by an earlier version of these
    modules, or specialised otherwise, is never reused."""
    return zlib.crc32(f"{n_stages}-{vectorised}-{trans_ndim}".encode(), _source_crc())


@register_funcify_default_op_cache_key(HMMLogpOp)
def _numba_funcify_hmm_logp(op, node=None, **kwargs):
    # The fast kernel is specialised on the number of stages (see fast.specialise) when the
    # static input shapes give it; otherwise the generic specialisation sizes its work vectors
    # at run time. Either way the shapes are checked when the compiled function runs.
    trans_ndim = node.inputs[1].type.ndim if node is not None else 2
    static = [node.inputs[0].type.shape[0], *node.inputs[1].type.shape[-2:],
              node.inputs[2].type.shape[1]] if node is not None else [None]
    known = {s for s in static if s is not None}
    vec = vector_flag()  # loads libmvec if usable; its type selects the exp code path
    logp_and_grad = compiled.logp_and_grad
    if len(known) == 1 and min(known) <= fast.MAX_UNROLLED_STAGES:
        n_stages = known.pop()
        zero, zero2, _ = fast.specialise(n_stages)

        @numba_njit
        def work_vectors(k):
            return zero, zero2
    else:
        n_stages = -1

        @numba_njit
        def work_vectors(k):
            return np.zeros(k), np.zeros(k * k)

    if trans_ndim == 3:

        @numba_njit
        def trans_ok(log_trans, k, n_t):
            return (log_trans.shape[0] == n_t - 1 and log_trans.shape[1] == k
                    and log_trans.shape[2] == k)
    else:

        @numba_njit
        def trans_ok(log_trans, k, n_t):
            return log_trans.shape[0] == k and log_trans.shape[1] == k

    @numba_njit
    def hmm_logp_numba(log_init, log_trans, log_lik):
        k = log_init.shape[0]
        n_t = log_lik.shape[0]
        zero, zero2 = work_vectors(k)
        if len(zero) != k or not trans_ok(log_trans, k, n_t) or log_lik.shape[1] != k or n_t < 1:
            raise ValueError(
                "hmm_logp: expected log_init[K], log_trans[K, K] or [T-1, K, K], log_lik[T, K] "
                "with T >= 1 and K as in the graph's static shapes"
            )
        logp, g_init, g_trans, g_lik = logp_and_grad(
            np.ascontiguousarray(log_init),
            np.ascontiguousarray(log_trans),
            np.ascontiguousarray(log_lik),
            zero,
            zero2,
            vec,
        )
        return np.asarray(logp), g_init, g_trans, g_lik

    return hmm_logp_numba, _cache_key(n_stages, len(vec), trans_ndim)
