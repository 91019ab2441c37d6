"""Compiled entry points of the HMM kernels: the fast path, or the exact log-space path.

Each function here runs the fast linear-space path (:mod:`stressflow.models.numerics.fast`) and
hands the whole call to the exact log-space path (:mod:`stressflow.models.numerics.logspace`)
when the fast path reports a possible loss of precision (see
:mod:`stressflow.models.numerics.kernels` for the rules). They take the validated arrays plus
``(zero, zero2, vec)`` from :func:`stressflow.models.numerics.fast.specialise` and can be called
from other numba code: the PyTensor Op (:mod:`stressflow.models.numerics.ops`) inlines
:func:`logp_and_grad` into the log density that nutpie samples. ``log_trans`` is ``(K, K)`` or
``(T-1, K, K)`` (see :mod:`stressflow.models.numerics.steps`); every result that holds pairwise
marginals has the form of ``log_trans``.

numba caches these functions by this file's timestamp only, although they inline code from
``steps.py``, ``fast.py``, ``logspace.py`` and ``vecmath.py``: after editing any of those,
clear ``models/numerics/__pycache__`` (see :mod:`stressflow.models.numerics.vecmath`).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from stressflow.models.numerics.fast import (
    backward_fast,
    forward_fast,
    log_norm_from,
    transitions,
)
from stressflow.models.numerics.logspace import backward_log, exp_rows, forward_log
from stressflow.models.numerics.steps import pairs_blank

__all__ = ["filter_probs", "log_marginal", "smooth", "logp_and_grad", "smooth_many"]


@njit(cache=True, nogil=True)
def filter_probs(log_init, log_trans, log_lik, zero, zero2, vec):
    """``(alpha, log_norm, log_alpha, fast)``: ``alpha[T, K] = Pr(stage_t = k | y_0..y_t)``,
    ``log_norm[T] = log p(y_t | y_0..y_{t-1})``, and ``log_alpha = log(alpha)`` from the
    log-space path (``fast = False``) or an empty ``(0, 0)`` array (``fast = True``)."""
    trans, ok = transitions(log_trans, zero2, vec)
    if ok:
        alpha, _, shift, ratio, _, ok = forward_fast(log_init, trans, log_lik, zero, vec)
        if ok:
            return alpha, log_norm_from(shift, ratio), np.empty((0, 0)), True
    log_alpha, log_norm = forward_log(log_init, log_trans, log_lik)
    return exp_rows(log_alpha), log_norm, log_alpha, False


@njit(cache=True, nogil=True)
def log_marginal(log_init, log_trans, log_lik, zero, zero2, vec):
    """``log p(y_0..y_{T-1})``."""
    trans, ok = transitions(log_trans, zero2, vec)
    if ok:
        _, _, _, _, logp, ok = forward_fast(log_init, trans, log_lik, zero, vec)
        if ok:
            return logp
    return forward_log(log_init, log_trans, log_lik)[1].sum()


@njit(cache=True, nogil=True)
def smooth(log_init, log_trans, log_lik, zero, zero2, vec, want_log_norm):
    """``(gamma, xi, alpha, log_norm, logp)``.

    ``gamma[T, K] = Pr(stage_t = k | y_0..y_{T-1})``; ``xi`` the pairwise marginals
    ``Pr(stage_{t-1} = i, stage_t = j | y_0..y_{T-1})``, summed over t to ``(K, K)`` for a constant
    ``log_trans``, shape ``(T-1, K, K)`` for a time-varying one; ``alpha[T, K] = Pr(stage_t = k
    | y_0..y_t)``; ``log_norm[T] = log p(y_t | y_0..y_{t-1})``, computed only if
    ``want_log_norm`` (an empty array otherwise); ``logp = log p(y_0..y_{T-1})``. If ``logp`` is
    ``-inf`` or NaN, ``gamma`` and ``xi`` are NaN.
    """
    trans, ok = transitions(log_trans, zero2, vec)
    if ok:
        alpha, emis, shift, ratio, logp, ok = forward_fast(log_init, trans, log_lik, zero, vec)
        if ok:
            gamma, xi, ok = backward_fast(trans, alpha, emis, zero)
            if ok:
                log_norm = log_norm_from(shift, ratio) if want_log_norm else np.empty(0)
                return gamma, xi, alpha, log_norm, logp
    log_alpha, log_norm = forward_log(log_init, log_trans, log_lik)
    alpha = exp_rows(log_alpha)
    logp = log_norm.sum()
    if not np.isfinite(log_norm[-1]):
        xi = pairs_blank(log_trans, log_init.shape[0])
        xi.fill(np.nan)
        return np.full(log_lik.shape, np.nan), xi, alpha, log_norm, logp
    gamma, xi = backward_log(log_trans, log_lik, log_alpha)
    return gamma, xi, alpha, log_norm, logp


@njit(cache=True, nogil=True)
def logp_and_grad(log_init, log_trans, log_lik, zero, zero2, vec):
    """``(logp, g_init[K], g_trans, g_lik[T, K])`` as
    :func:`stressflow.models.numerics.kernels.logp_and_grad` returns them (``g_trans`` has the
    shape of ``log_trans``); the gradients are NaN if ``logp`` is not finite."""
    gamma, xi, _, _, logp = smooth(log_init, log_trans, log_lik, zero, zero2, vec, False)
    if not np.isfinite(logp):
        k = log_init.shape[0]
        xi = pairs_blank(log_trans, k)
        xi.fill(np.nan)
        return logp, np.full(k, np.nan), xi, np.full(log_lik.shape, np.nan)
    return logp, gamma[0].copy(), xi, gamma


@njit(cache=True, nogil=True)
def smooth_many(log_init, log_trans, log_lik, zero, zero2, vec, want_log_norm):
    """:func:`smooth` per draw s of ``log_trans[s]``, ``log_lik[s]``: ``(gamma[S, T, K],
    alpha[S, T, K], log_norm[S, T])`` (``log_norm[S, 0]`` unless ``want_log_norm``)."""
    n_draws, n_t, k = log_lik.shape
    gamma = np.empty((n_draws, n_t, k))
    alpha = np.empty((n_draws, n_t, k))
    log_norm = np.empty((n_draws, n_t if want_log_norm else 0))
    for s in range(n_draws):
        g, _, a, ln, _ = smooth(log_init, log_trans[s], log_lik[s], zero, zero2, vec,
                                want_log_norm)
        gamma[s] = g
        alpha[s] = a
        if want_log_norm:
            log_norm[s] = ln
    return gamma, alpha, log_norm
