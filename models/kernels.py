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


@njit(cache=True)
def _log_matvec_row(log_alpha_prev, log_trans, j):
    """log sum_i exp(log_alpha_prev[i] + log_trans[i, j]) (exact log-space reduction)."""
    k = log_alpha_prev.shape[0]
    m = -np.inf
    for i in range(k):
        v = log_alpha_prev[i] + log_trans[i, j]
        if v > m:
            m = v
    if m == -np.inf:
        return -np.inf
    s = 0.0
    for i in range(k):
        s += np.exp(log_alpha_prev[i] + log_trans[i, j] - m)
    return m + np.log(s)


@njit(cache=True)
def _forward(log_init, log_trans, log_lik):
    """Normalised forward pass.

    Returns ``alpha[T, K] = Pr(stage_t = k | y_1..y_t)``,
    ``log_norm[T] = log p(y_t | y_1..y_{t-1})`` (``log p(y_1)`` at t = 0), and the shifted
    emission factors ``emis[T, K] = exp(log_lik[t, k] - max_k log_lik[t, k])`` reused by the
    backward pass.
    """
    n_t, k = log_lik.shape
    trans = np.exp(log_trans)
    alpha = np.empty((n_t, k))
    emis = np.empty((n_t, k))
    log_norm = np.empty(n_t)
    shift = np.empty(n_t)
    a = np.empty(k)
    # shifted emission factors, computed outside the recursion so the loop vectorises
    for t in range(n_t):
        m = -np.inf
        for j in range(k):
            if log_lik[t, j] > m:
                m = log_lik[t, j]
        shift[t] = m if np.isfinite(m) else 0.0
    for t in range(n_t):
        for j in range(k):
            emis[t, j] = np.exp(log_lik[t, j] - shift[t])
    for t in range(n_t):
        # fast step: a[j] = Pr(stage_t = j | y_1..y_{t-1}) * emis[t, j]
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
        if s > _TINY and s < np.inf:
            inv = 1.0 / s
            for j in range(k):
                alpha[t, j] = a[j] * inv
            log_norm[t] = s  # converted to shift + log(s) after the loop
            continue
        # the linear step underflowed (or the input is not finite): exact log-space step
        la = np.empty(k)
        if t == 0:
            for j in range(k):
                la[j] = log_init[j] + log_lik[0, j]
        else:
            lap = np.empty(k)
            for i in range(k):
                lap[i] = np.log(alpha[t - 1, i]) if alpha[t - 1, i] > 0.0 else -np.inf
            for j in range(k):
                la[j] = _log_matvec_row(lap, log_trans, j) + log_lik[t, j]
        lm = -np.inf
        for j in range(k):
            if la[j] > lm:
                lm = la[j]
        if not np.isfinite(lm):
            # impossible observation under every reachable stage, or non-finite input
            for t2 in range(t):
                log_norm[t2] = shift[t2] + np.log(log_norm[t2])
            log_norm[t] = lm if lm == -np.inf else np.nan
            for t2 in range(t, n_t):
                if t2 > t:
                    log_norm[t2] = np.nan
                for j in range(k):
                    alpha[t2, j] = np.nan
                    emis[t2, j] = np.nan
            return alpha, log_norm, emis
        s = 0.0
        for j in range(k):
            a[j] = np.exp(la[j] - lm)
            s += a[j]
        for j in range(k):
            alpha[t, j] = a[j] / s
        # stored in the same "shift + log(s)" form as the fast steps
        shift[t] = lm
        log_norm[t] = s
    for t in range(n_t):
        log_norm[t] = shift[t] + np.log(log_norm[t])
    return alpha, log_norm, emis


@njit(cache=True)
def _backward_smooth(log_trans, log_lik, alpha, emis):
    """Backward pass given the normalised forward probabilities.

    Returns ``gamma[T, K] = Pr(stage_t = k | y_1..y_T)`` and
    ``xi_sum[K, K] = sum_{t=2..T} Pr(stage_{t-1} = i, stage_t = j | y_1..y_T)``.
    """
    n_t, k = log_lik.shape
    trans = np.exp(log_trans)
    gamma = np.empty((n_t, k))
    xi_sum = np.zeros((k, k))
    beta = np.ones(k)  # max-normalised beta_{t}, any positive scale
    w = np.empty(k)
    xi = np.empty((k, k))
    for j in range(k):
        gamma[n_t - 1, j] = alpha[n_t - 1, j]
    for t in range(n_t - 2, -1, -1):
        # w[j] proportional to p(y_{t+1} | j) * beta_{t+1}[j]
        wmax = 0.0
        for j in range(k):
            w[j] = emis[t + 1, j] * beta[j]
            if w[j] > wmax:
                wmax = w[j]
        # joint Pr(stage_t = i, stage_{t+1} = j | y) proportional to alpha_t[i] P[i,j] w[j]
        tot = 0.0
        for i in range(k):
            for j in range(k):
                v = alpha[t, i] * trans[i, j] * w[j]
                xi[i, j] = v
                tot += v
        if tot > _TINY and wmax > _TINY:
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
            for i in range(k):
                beta[i] *= inv_bmax
        else:
            # scaled step underflowed: exact log-space step
            lw = np.empty(k)
            for j in range(k):
                lw[j] = (log_lik[t + 1, j] + np.log(beta[j])) if beta[j] > 0.0 else -np.inf
            lxi = np.empty((k, k))
            lmax = -np.inf
            for i in range(k):
                la_i = np.log(alpha[t, i]) if alpha[t, i] > 0.0 else -np.inf
                for j in range(k):
                    v = la_i + log_trans[i, j] + lw[j]
                    lxi[i, j] = v
                    if v > lmax:
                        lmax = v
            s = 0.0
            for i in range(k):
                for j in range(k):
                    xi[i, j] = np.exp(lxi[i, j] - lmax)
                    s += xi[i, j]
            for i in range(k):
                for j in range(k):
                    xi_sum[i, j] += xi[i, j] / s
            lb = np.empty(k)
            bmax = -np.inf
            for i in range(k):
                lb[i] = _log_matvec_row(lw, log_trans.T.copy(), i)
                if lb[i] > bmax:
                    bmax = lb[i]
            for i in range(k):
                beta[i] = np.exp(lb[i] - bmax)
        # gamma_t proportional to alpha_t * beta_t
        s = 0.0
        for i in range(k):
            g = alpha[t, i] * beta[i]
            gamma[t, i] = g
            s += g
        if s > 0.0:
            inv_s = 1.0 / s
            for i in range(k):
                gamma[t, i] *= inv_s
        else:
            # alpha and beta supports disjoint at double precision: use the marginal of xi
            for i in range(k):
                g = 0.0
                for j in range(k):
                    g += xi[i, j]
                gamma[t, i] = g
            s = 0.0
            for i in range(k):
                s += gamma[t, i]
            for i in range(k):
                gamma[t, i] /= s
    return gamma, xi_sum


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
    alpha, log_norm, _ = _forward(log_init, log_trans, log_lik)
    return alpha, log_norm


@njit(cache=True)
def log_marginal(log_init, log_trans, log_lik):
    """Marginal log-likelihood ``log p(y_1..y_T)`` with the stages summed out (a float)."""
    _, log_norm, _ = _forward(log_init, log_trans, log_lik)
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
    alpha, log_norm, emis = _forward(log_init, log_trans, log_lik)
    gamma, xi_sum = _backward_smooth(log_trans, log_lik, alpha, emis)
    return gamma, xi_sum, alpha, log_norm


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
    alpha, log_norm, emis = _forward(log_init, log_trans, log_lik)
    logp = log_norm.sum()
    if not np.isfinite(logp):
        k = log_init.shape[0]
        return (logp, np.full(k, np.nan), np.full((k, k), np.nan),
                np.full(log_lik.shape, np.nan))
    gamma, xi_sum = _backward_smooth(log_trans, log_lik, alpha, emis)
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
def _sample_paths(log_trans, alpha, uniforms):
    n_draws, n_t = uniforms.shape
    k = alpha.shape[1]
    trans = np.exp(log_trans)
    paths = np.empty((n_draws, n_t), dtype=np.int64)
    w = np.empty(k)
    for d in range(n_draws):
        # stage_T ~ Pr(stage_T | y_1..y_T)
        u = uniforms[d, n_t - 1]
        c = 0.0
        s = k - 1
        for j in range(k):
            c += alpha[n_t - 1, j]
            if u < c:
                s = j
                break
        paths[d, n_t - 1] = s
        for t in range(n_t - 2, -1, -1):
            # stage_t | stage_{t+1}=s, y_1..y_t  ~  alpha_t[i] P[i, s]
            tot = 0.0
            for i in range(k):
                w[i] = alpha[t, i] * trans[i, s]
                tot += w[i]
            u = uniforms[d, t] * tot
            c = 0.0
            nxt = k - 1
            for i in range(k):
                c += w[i]
                if u < c:
                    nxt = i
                    break
            s = nxt
            paths[d, t] = s
    return paths


def sample_paths(log_init, log_trans, log_lik, n_paths, rng):
    """Forward-filtering backward-sampling (FFBS) of whole stage paths.

    Draws ``n_paths`` independent paths from the joint posterior
    ``Pr(stage_1..stage_T | y_1..y_T)`` at the given parameters.

    Parameters
    ----------
    n_paths : int
    rng : numpy.random.Generator
        Source of randomness; the same generator state gives the same paths.

    Returns
    -------
    ndarray of int64, shape (n_paths, T)
    """
    alpha, _, _ = _forward(log_init, log_trans, log_lik)
    uniforms = rng.random((n_paths, log_lik.shape[0]))
    return _sample_paths(np.asarray(log_trans, dtype=np.float64), alpha, uniforms)
