"""The exact log-space path of the HMM kernels, Viterbi and backward sampling (compiled code).

See :mod:`stressflow.models.numerics.kernels` for the conventions. These recursions carry
``log Pr(stage_t | y_0..y_t)`` with log-sum-exp, so they neither underflow nor overflow for any
finite input; the kernels use them when the fast path (:mod:`stressflow.models.numerics.fast`)
reports a possible loss of precision. ``log_trans`` is ``(K, K)`` or ``(T-1, K, K)`` (see
:mod:`stressflow.models.numerics.steps`).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from stressflow.models.numerics.steps import pair_add, pairs_blank, trans_at

__all__ = [
    "forward_log",
    "backward_log",
    "exp_rows",
    "log_rows",
    "viterbi_path",
    "sample_backward",
]


@njit(cache=True, nogil=True)
def _logsumexp(v):
    m = -np.inf
    for x in v:
        if x > m:
            m = x
    if not np.isfinite(m):
        return m
    s = 0.0
    for x in v:
        s += np.exp(x - m)
    return m + np.log(s)


@njit(cache=True, nogil=True)
def forward_log(log_init, log_trans, log_lik):
    """Exact forward pass in log space.

    Returns ``log_alpha[T, K] = log Pr(stage_t = k | y_0..y_t)`` and ``log_norm[T] =
    log p(y_t | y_0..y_{t-1})``. After an observation that is impossible under every reachable
    stage, ``log_norm`` is ``-inf`` from that day on and ``log_alpha`` is NaN.
    """
    n_t, k = log_lik.shape
    log_alpha = np.empty((n_t, k))
    log_norm = np.empty(n_t)
    la = np.empty(k)
    col = np.empty(k)
    for t in range(n_t):
        for j in range(k):
            if t == 0:
                la[j] = log_init[j] + log_lik[0, j]
            else:
                for i in range(k):
                    col[i] = log_alpha[t - 1, i] + trans_at(log_trans, t, i, j, k)
                la[j] = _logsumexp(col) + log_lik[t, j]
        c = _logsumexp(la)
        if not np.isfinite(c):
            for t2 in range(t, n_t):
                log_norm[t2] = c if (c == -np.inf or t2 == t) else np.nan
                for j in range(k):
                    log_alpha[t2, j] = np.nan
            return log_alpha, log_norm
        for j in range(k):
            log_alpha[t, j] = la[j] - c
        log_norm[t] = c
    return log_alpha, log_norm


@njit(cache=True, nogil=True)
def backward_log(log_trans, log_lik, log_alpha):
    """Exact backward pass in log space; returns ``(gamma, xi)`` as
    :func:`stressflow.models.numerics.fast.backward_fast` does: ``gamma[T, K] = Pr(stage_t = k
    | y_0..y_{T-1})``, ``xi`` the pairwise marginals ``Pr(stage_{t-1} = i, stage_t = j |
    y_0..y_{T-1})``, summed over t to ``(K, K)`` for a constant ``log_trans``, one ``(K, K)``
    matrix per step, shape ``(T-1, K, K)``, for a time-varying one."""
    n_t, k = log_lik.shape
    gamma = np.empty((n_t, k))
    xi = pairs_blank(log_trans, k)
    log_beta = np.zeros(k)
    lw = np.empty(k)
    lxi = np.empty((k, k))
    row = np.empty(k)
    lg = np.empty(k)
    for j in range(k):
        gamma[n_t - 1, j] = np.exp(log_alpha[n_t - 1, j])
    for t in range(n_t - 2, -1, -1):
        for j in range(k):
            lw[j] = log_lik[t + 1, j] + log_beta[j]
        for i in range(k):
            for j in range(k):
                lxi[i, j] = log_alpha[t, i] + trans_at(log_trans, t + 1, i, j, k) + lw[j]
        c = _logsumexp(lxi.ravel())
        tot = 0.0
        for i in range(k):
            for j in range(k):
                lxi[i, j] = np.exp(lxi[i, j] - c)
                tot += lxi[i, j]
        for i in range(k):  # renormalised: the rounding of c leaves tot off 1 by ~1e-11
            for j in range(k):
                pair_add(xi, t, i, j, lxi[i, j] / tot)
        for i in range(k):
            for j in range(k):
                row[j] = trans_at(log_trans, t + 1, i, j, k) + lw[j]
            log_beta[i] = _logsumexp(row)
        m = _logsumexp(log_beta)
        for i in range(k):
            log_beta[i] -= m
            lg[i] = log_alpha[t, i] + log_beta[i]
        c = _logsumexp(lg)
        for i in range(k):
            gamma[t, i] = np.exp(lg[i] - c)
    return exp_rows(log_rows(gamma)), xi


@njit(cache=True, nogil=True)
def exp_rows(log_p):
    """Rows of normalised log-probabilities back to probabilities that sum to 1 exactly.

    ``log_p`` rows are ``la - logsumexp(la)``; with entries of 1e5 in magnitude the rounding of
    the log normaliser leaves ``sum(exp(row))`` off 1 by ~1e-11, so each row is renormalised.
    """
    out = np.empty_like(log_p)
    for t in range(log_p.shape[0]):
        s = 0.0
        for j in range(log_p.shape[1]):
            out[t, j] = np.exp(log_p[t, j])
            s += out[t, j]
        if s > 0.0 and np.isfinite(s):
            for j in range(log_p.shape[1]):
                out[t, j] /= s
    return out


@njit(cache=True, nogil=True)
def log_rows(p):
    """Entry-wise ``log p`` of a 2-d array of probabilities (``-inf`` where ``p`` is 0)."""
    out = np.empty_like(p)
    for t in range(p.shape[0]):
        for j in range(p.shape[1]):
            out[t, j] = np.log(p[t, j]) if p[t, j] > 0.0 else -np.inf
    return out


@njit(cache=True, nogil=True)
def viterbi_path(log_init, log_trans, log_lik):
    """Most probable stage path ``argmax_s Pr(stage_0..stage_{T-1} = s | y_0..y_{T-1})``, int64 of
    shape (T,); ties go to the lower index."""
    n_t, k = log_lik.shape
    delta = np.empty(k)
    new = np.empty(k)
    back = np.empty((n_t, k), dtype=np.int64)
    for j in range(k):
        delta[j] = log_init[j] + log_lik[0, j]
    for t in range(1, n_t):
        for j in range(k):
            best = -np.inf
            arg = 0
            for i in range(k):
                v = delta[i] + trans_at(log_trans, t, i, j, k)
                if v > best:
                    best = v
                    arg = i
            new[j] = best + log_lik[t, j]
            back[t, j] = arg
        # subtract the max to keep the scores bounded (argmax is unchanged)
        m = new.max()
        for j in range(k):
            delta[j] = new[j] - m if np.isfinite(m) else new[j]
    path = np.empty(n_t, dtype=np.int64)
    path[n_t - 1] = np.argmax(delta)
    for t in range(n_t - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


@njit(cache=True, nogil=True)
def sample_backward(log_trans, log_alpha, uniforms):
    """Backward sampling of FFBS: paths of shape ``uniforms.shape`` (int64) drawn from
    ``Pr(stage_0..stage_{T-1} | y_0..y_{T-1})`` given ``log_alpha[T, K] = log Pr(stage_t = k |
    y_0..y_t)``, one uniform per path and day."""
    n_draws, n_t = uniforms.shape
    k = log_alpha.shape[1]
    paths = np.empty((n_draws, n_t), dtype=np.int64)
    lw = np.empty(k)
    w = np.empty(k)
    for d in range(n_draws):
        # stage_T ~ Pr(stage_T | y_0..y_{T-1}); stage_t | stage_{t+1} = s ~ alpha_t[i] P_{t+1}[i, s]
        s = 0
        for t in range(n_t - 1, -1, -1):
            for i in range(k):
                lw[i] = log_alpha[t, i] + (
                    trans_at(log_trans, t + 1, i, s, k) if t < n_t - 1 else 0.0
                )
            m = -np.inf
            for i in range(k):
                if lw[i] > m:
                    m = lw[i]
            tot = 0.0
            for i in range(k):
                w[i] = np.exp(lw[i] - m)
                tot += w[i]
            u = uniforms[d, t] * tot
            c = 0.0
            nxt = -1
            for i in range(k):
                c += w[i]
                if u < c and w[i] > 0.0:
                    nxt = i
                    break
            if nxt < 0:  # rounding at the top end: the last state with positive weight
                for i in range(k):
                    if w[i] > 0.0:
                        nxt = i
            s = nxt
            paths[d, t] = s
    return paths
