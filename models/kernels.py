"""Hidden Markov model kernels: pure functions of ``(log_init, log_trans, log_lik)``.

This is the plain-array layer of stressflow. Every function here takes

- ``log_init[K]``: ``log Pr(stage_1 = k)``;
- ``log_trans[K, K]``: ``log P[i, j] = log Pr(stage_t = j | stage_{t-1} = i)`` (rows are
  log-probability vectors; ``-inf`` marks a forbidden transition);
- ``log_lik[T, K]``: ``log p(y_t | stage_t = k)``. A day with no observation has a row of
  zeros (it contributes nothing to the likelihood but keeps its place in time);

and knows nothing about the emission model that produced ``log_lik``. All arrays are float64.

Numerics. The forward pass carries normalised filtered probabilities and accumulates the log
normalisers ``log p(y_t | y_1..y_{t-1})``; the emission factor of each step is formed in log
space and shifted by its maximum before exponentiation, so the recursion neither underflows
nor overflows for any finite input (tested at T = 10,000 with log-likelihoods of 1e5 in
magnitude). The backward pass carries a max-normalised beta with the same guarantees, falling
back to an exact log-space step if a scaled step underflows. The cost is O(T K^2) with 2K
transcendental evaluations per step.

All kernels are compiled with numba (``cache=True``) so that a PyTensor Op built on them can be
inlined into the numba graph that nutpie samples.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "filter_probs",
    "smooth",
    "logp_and_grad",
    "viterbi",
    "sample_paths",
    "log_marginal",
]

_TINY = 1e-300


# Probabilities below this are treated as a possible loss of precision: the fast linear-space
# path hands the whole call to the exact log-space path.
_LOSSY = 1e-280
# log_trans entries below this (but finite) would underflow in exp(): use the log-space path.
_LOG_TRANS_MIN = -600.0


@njit(cache=True)
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


@njit(cache=True)
def _forward_fast(log_init, log_trans, log_lik):
    """Normalised forward pass in linear space (the fast path).

    Returns ``(alpha, log_norm, emis, ok)`` with ``alpha[T, K] = Pr(stage_t = k | y_1..y_t)``,
    ``log_norm[T] = log p(y_t | y_1..y_{t-1})``, the shifted emission factors
    ``emis[T, K] = exp(log_lik[t, k] - max_k log_lik[t, k])`` reused by the backward pass, and
    ``ok = False`` as soon as any probability falls below ``_LOSSY`` or the input is not
    finite, in which case the caller must use the exact log-space path instead.
    """
    n_t, k = log_lik.shape
    alpha = np.empty((n_t, k))
    emis = np.empty((n_t, k))
    log_norm = np.empty(n_t)
    shift = np.empty(n_t)
    a = np.empty(k)
    for i in range(k):
        for j in range(k):
            if log_trans[i, j] < _LOG_TRANS_MIN and log_trans[i, j] > -np.inf:
                return alpha, log_norm, emis, False
    trans = np.exp(log_trans)
    for t in range(n_t):
        m = -np.inf
        for j in range(k):
            if log_lik[t, j] > m:
                m = log_lik[t, j]
        if not np.isfinite(m):
            return alpha, log_norm, emis, False
        shift[t] = m
    # shifted emission factors, computed outside the recursion so the loop vectorises
    for t in range(n_t):
        for j in range(k):
            emis[t, j] = np.exp(log_lik[t, j] - shift[t])
    for t in range(n_t):
        s = 0.0
        for j in range(k):
            if t == 0:
                pred = np.exp(log_init[j])
            else:
                pred = 0.0
                for i in range(k):
                    pred += alpha[t - 1, i] * trans[i, j]
            a[j] = pred * emis[t, j]
            s += a[j]
        if not (s > _TINY and s < np.inf):
            return alpha, log_norm, emis, False
        inv = 1.0 / s
        for j in range(k):
            v = a[j] * inv
            if v < _LOSSY:
                return alpha, log_norm, emis, False
            alpha[t, j] = v
        log_norm[t] = s
    for t in range(n_t):
        log_norm[t] = shift[t] + np.log(log_norm[t])
    return alpha, log_norm, emis, True


@njit(cache=True)
def _backward_fast(log_trans, alpha, emis):
    """Backward pass in linear space given the fast forward pass.

    Returns ``(gamma, xi_sum, ok)`` with ``gamma[T, K] = Pr(stage_t = k | y_1..y_T)``,
    ``xi_sum[K, K] = sum_{t=2..T} Pr(stage_{t-1} = i, stage_t = j | y_1..y_T)`` and
    ``ok = False`` if a max-normalised backward message fell below ``_LOSSY``.
    """
    n_t, k = alpha.shape
    trans = np.exp(log_trans)
    gamma = np.empty((n_t, k))
    xi_sum = np.zeros((k, k))
    beta = np.ones(k)  # max-normalised beta_t
    w = np.empty(k)
    xi = np.empty((k, k))
    for j in range(k):
        gamma[n_t - 1, j] = alpha[n_t - 1, j]
    for t in range(n_t - 2, -1, -1):
        # w[j] proportional to p(y_{t+1} | j) * beta_{t+1}[j]
        for j in range(k):
            w[j] = emis[t + 1, j] * beta[j]
        # Pr(stage_t = i, stage_{t+1} = j | y) proportional to alpha_t[i] P[i, j] w[j]
        tot = 0.0
        for i in range(k):
            for j in range(k):
                v = alpha[t, i] * trans[i, j] * w[j]
                xi[i, j] = v
                tot += v
        if not tot > _TINY:
            return gamma, xi_sum, False
        inv_tot = 1.0 / tot
        for i in range(k):
            for j in range(k):
                xi_sum[i, j] += xi[i, j] * inv_tot
        bmax = 0.0
        for i in range(k):
            b = 0.0
            for j in range(k):
                b += trans[i, j] * w[j]
            beta[i] = b
            if b > bmax:
                bmax = b
        inv_bmax = 1.0 / bmax
        s = 0.0
        for i in range(k):
            beta[i] *= inv_bmax
            if beta[i] < _LOSSY:
                return gamma, xi_sum, False
            g = alpha[t, i] * beta[i]
            gamma[t, i] = g
            s += g
        inv_s = 1.0 / s
        for i in range(k):
            gamma[t, i] *= inv_s
    return gamma, xi_sum, True


@njit(cache=True)
def _forward_log(log_init, log_trans, log_lik):
    """Exact forward pass in log space.

    Returns ``log_alpha[T, K] = log Pr(stage_t = k | y_1..y_t)`` and ``log_norm[T]``. After an
    observation that is impossible under every reachable stage, ``log_norm`` is ``-inf`` from
    that day on and ``log_alpha`` is NaN.
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
                    col[i] = log_alpha[t - 1, i] + log_trans[i, j]
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


@njit(cache=True)
def _backward_log(log_trans, log_lik, log_alpha):
    """Exact backward pass in log space; returns ``(gamma, xi_sum)`` as in _backward_fast."""
    n_t, k = log_lik.shape
    gamma = np.empty((n_t, k))
    xi_sum = np.zeros((k, k))
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
                lxi[i, j] = log_alpha[t, i] + log_trans[i, j] + lw[j]
        c = _logsumexp(lxi.ravel())
        for i in range(k):
            for j in range(k):
                xi_sum[i, j] += np.exp(lxi[i, j] - c)
        for i in range(k):
            for j in range(k):
                row[j] = log_trans[i, j] + lw[j]
            log_beta[i] = _logsumexp(row)
        m = _logsumexp(log_beta)
        for i in range(k):
            log_beta[i] -= m
            lg[i] = log_alpha[t, i] + log_beta[i]
        c = _logsumexp(lg)
        for i in range(k):
            gamma[t, i] = np.exp(lg[i] - c)
    return _exp_rows(_log_rows(gamma)), xi_sum


@njit(cache=True)
def _exp_rows(log_p):
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


@njit(cache=True)
def _log_rows(p):
    out = np.empty_like(p)
    for t in range(p.shape[0]):
        for j in range(p.shape[1]):
            out[t, j] = np.log(p[t, j]) if p[t, j] > 0.0 else -np.inf
    return out


@njit(cache=True)
def _filter(log_init, log_trans, log_lik):
    """``(alpha, log_norm, log_alpha_or_empty, emis, fast)`` choosing the path."""
    alpha, log_norm, emis, ok = _forward_fast(log_init, log_trans, log_lik)
    if ok:
        return alpha, log_norm, np.empty((0, 0)), emis, True
    log_alpha, log_norm = _forward_log(log_init, log_trans, log_lik)
    return _exp_rows(log_alpha), log_norm, log_alpha, emis, False


@njit(cache=True)
def _smooth(log_init, log_trans, log_lik):
    """``(gamma, xi_sum, alpha, log_norm)``: fast path, or the exact log-space path."""
    alpha, log_norm, emis, ok = _forward_fast(log_init, log_trans, log_lik)
    if ok:
        gamma, xi_sum, ok = _backward_fast(log_trans, alpha, emis)
        if ok:
            return gamma, xi_sum, alpha, log_norm
    log_alpha, log_norm = _forward_log(log_init, log_trans, log_lik)
    alpha = _exp_rows(log_alpha)
    if not np.isfinite(log_norm[-1]):
        k = log_init.shape[0]
        return np.full(log_lik.shape, np.nan), np.full((k, k), np.nan), alpha, log_norm
    gamma, xi_sum = _backward_log(log_trans, log_lik, log_alpha)
    return gamma, xi_sum, alpha, log_norm


@njit(cache=True)
def filter_probs(log_init, log_trans, log_lik):
    """Filtered stage probabilities and one-step log predictive densities.

    Returns
    -------
    filtered : ndarray, shape (T, K)
        ``Pr(stage_t = k | y_1..y_t)``; each row sums to 1.
    log_norm : ndarray, shape (T,)
        ``log p(y_t | y_1..y_{t-1})`` (``log p(y_1)`` for t = 1). Their sum is the marginal
        log-likelihood ``log p(y_1..y_T)``.
    """
    alpha, log_norm, _, _, _ = _filter(log_init, log_trans, log_lik)
    return alpha, log_norm


@njit(cache=True)
def log_marginal(log_init, log_trans, log_lik):
    """Marginal log-likelihood ``log p(y_1..y_T)`` with the stages summed out (a float)."""
    _, log_norm, _, _, _ = _filter(log_init, log_trans, log_lik)
    return log_norm.sum()


@njit(cache=True)
def smooth(log_init, log_trans, log_lik):
    """Forward-backward smoother.

    Returns
    -------
    smoothed : ndarray, shape (T, K)
        ``Pr(stage_t = k | y_1..y_T)``; each row sums to 1.
    expected_transitions : ndarray, shape (K, K)
        ``sum_{t=2..T} Pr(stage_{t-1} = i, stage_t = j | y_1..y_T)``: the posterior expected
        number of i -> j transitions.
    filtered : ndarray, shape (T, K)
        ``Pr(stage_t = k | y_1..y_t)``.
    log_norm : ndarray, shape (T,)
        ``log p(y_t | y_1..y_{t-1})``.
    """
    return _smooth(log_init, log_trans, log_lik)


@njit(cache=True)
def logp_and_grad(log_init, log_trans, log_lik):
    """Marginal log-likelihood and its exact gradient from one forward-backward pass.

    With ``L = log p(y_1..y_T) = log sum_paths exp(log_init[s_1] + sum_t log_trans[s_{t-1}, s_t]
    + sum_t log_lik[t, s_t])``, the partial derivatives are posterior expectations:

    - ``dL/dlog_init[k] = Pr(stage_1 = k | y_1..y_T)``;
    - ``dL/dlog_trans[i, j] = sum_t Pr(stage_{t-1} = i, stage_t = j | y_1..y_T)``;
    - ``dL/dlog_lik[t, k] = Pr(stage_t = k | y_1..y_T)``.

    Returns ``(L, grad_log_init[K], grad_log_trans[K, K], grad_log_lik[T, K])``. The cost is
    O(T K^2), the same order as the forward pass alone.
    """
    gamma, xi_sum, _, log_norm = _smooth(log_init, log_trans, log_lik)
    logp = log_norm.sum()
    if not np.isfinite(logp):
        k = log_init.shape[0]
        return (logp, np.full(k, np.nan), np.full((k, k), np.nan),
                np.full(log_lik.shape, np.nan))
    return logp, gamma[0].copy(), xi_sum, gamma


@njit(cache=True)
def viterbi(log_init, log_trans, log_lik):
    """Most probable stage path ``argmax_s Pr(stage_1..stage_T = s | y_1..y_T)``.

    Returns an int64 array of shape (T,) with stage indices. Ties go to the lower index.
    """
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
                v = delta[i] + log_trans[i, j]
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


@njit(cache=True)
def _sample_paths(log_trans, log_alpha, uniforms):
    n_draws, n_t = uniforms.shape
    k = log_alpha.shape[1]
    paths = np.empty((n_draws, n_t), dtype=np.int64)
    lw = np.empty(k)
    w = np.empty(k)
    for d in range(n_draws):
        # stage_T ~ Pr(stage_T | y_1..y_T); stage_t | stage_{t+1} = s ~ alpha_t[i] P[i, s]
        s = 0
        for t in range(n_t - 1, -1, -1):
            for i in range(k):
                lw[i] = log_alpha[t, i] + (log_trans[i, s] if t < n_t - 1 else 0.0)
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


def sample_paths(log_init, log_trans, log_lik, n_paths, rng):
    """Forward-filtering backward-sampling (FFBS) of whole stage paths.

    Draws ``n_paths`` independent paths from the joint posterior
    ``Pr(stage_1..stage_T | y_1..y_T)`` at the given parameters. The backward sampling runs in
    log space, so stages whose filtered probability underflows are still sampled correctly.

    Parameters
    ----------
    n_paths : int
    rng : numpy.random.Generator
        Source of randomness; the same generator state gives the same paths.

    Returns
    -------
    ndarray of int64, shape (n_paths, T)

    Raises
    ------
    ValueError
        If the observations are impossible under the parameters (``log p(y) = -inf``) or not
        finite.
    """
    log_init = np.ascontiguousarray(log_init, dtype=np.float64)
    log_trans = np.ascontiguousarray(log_trans, dtype=np.float64)
    log_lik = np.ascontiguousarray(log_lik, dtype=np.float64)
    alpha, log_norm, log_alpha, _, fast = _filter(log_init, log_trans, log_lik)
    if not np.isfinite(log_norm).all():
        raise ValueError("cannot sample stage paths: log p(y) is not finite at these parameters")
    if fast:
        log_alpha = _log_rows(alpha)
    uniforms = rng.random((n_paths, log_lik.shape[0]))
    return _sample_paths(log_trans, log_alpha, uniforms)
