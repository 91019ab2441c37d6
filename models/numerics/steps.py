"""One step's transition matrix, constant or time-varying, for the compiled HMM kernels.

The kernels take ``log_trans`` either constant, shape ``(K, K)``, or time-varying, shape
``(T-1, K, K)``, where ``log_trans[t-1]`` is the matrix of the move INTO day ``t`` (days
0-based, t = 1..T-1). The helpers here hide the difference. Each is overloaded on the type of
its argument, so numba compiles a separate specialisation for each form, and in the constant
one a helper reduces to the plain indexing the kernels did before time-varying support.

The same helpers read the fast path's transition table (see
:func:`stressflow.models.numerics.fast.transitions`): a flat row-major K*K tuple or vector of
probabilities for a constant matrix, a ``(T-1, K, K)`` array of probabilities otherwise.

Compiled code only: calling these from Python raises ``NotImplementedError``.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

__all__ = ["is_time_varying", "trans_at", "pairs_blank", "pair_add"]


def is_time_varying(trans) -> bool:
    """Whether the numba type ``trans`` is a per-step ``(T-1, K, K)`` array."""
    return isinstance(trans, types.Array) and trans.ndim == 3


def trans_at(trans, day, i, j, k):
    """Entry ``(i, j)`` of the (log-)transition matrix of the move into ``day`` (1..T-1).

    ``trans`` is ``(K, K)``, ``(T-1, K, K)``, or a flat row-major K*K tuple or vector.
    """
    raise NotImplementedError


def pairs_blank(trans, k):
    """Zeros for the pairwise marginals: ``(K, K)`` (summed over steps) for a constant
    ``trans``, ``(T-1, K, K)`` (one matrix per step) for a time-varying one."""
    raise NotImplementedError


def pair_add(acc, t, i, j, value):
    """Add ``value`` to the pair ``(stage_t = i, stage_{t+1} = j)`` of ``acc`` (from
    :func:`pairs_blank`): ``acc[i, j]`` summed over steps, or ``acc[t, i, j]``."""
    raise NotImplementedError


@overload(trans_at, inline="always")
def _trans_at_impl(trans, day, i, j, k):
    if is_time_varying(trans):
        return lambda trans, day, i, j, k: trans[day - 1, i, j]
    if isinstance(trans, types.Array) and trans.ndim == 2:
        return lambda trans, day, i, j, k: trans[i, j]
    return lambda trans, day, i, j, k: trans[i * k + j]  # flat tuple or vector


@overload(pairs_blank, inline="always")
def _pairs_blank_impl(trans, k):
    if is_time_varying(trans):
        return lambda trans, k: np.zeros((trans.shape[0], k, k))
    return lambda trans, k: np.zeros((k, k))


@overload(pair_add, inline="always")
def _pair_add_impl(acc, t, i, j, value):
    if is_time_varying(acc):

        def impl(acc, t, i, j, value):
            acc[t, i, j] += value

        return impl

    def impl_sum(acc, t, i, j, value):
        acc[i, j] += value

    return impl_sum
