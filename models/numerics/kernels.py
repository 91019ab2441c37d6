"""Hidden Markov model kernels: pure functions of ``(log_init, log_trans, log_lik)``.

This is the plain-array layer of stressflow. Every function here takes

- ``log_init[K]``: ``log Pr(stage_1 = k)``;
- ``log_trans[K, K]``: ``log P[i, j] = log Pr(stage_t = j | stage_{t-1} = i)`` (rows are
  log-probability vectors; ``-inf`` marks a forbidden transition);
- ``log_lik[T, K]``: ``log p(y_t | stage_t = k)``. A day with no observation has a row of
  zeros (it contributes nothing to the likelihood but keeps its place in time);

and knows nothing about the emission model that produced ``log_lik``. All arrays are float64.

Numerics. Two paths agree to rounding. The fast path works in linear space: the emission
factor of each day is formed in log space and shifted by its maximum before exponentiation;
the unnormalised forward message is rescaled whenever its sum drops below 1e-20 and the
backward message whenever its normaliser leaves [1e-20, 1e20], and the log normalisers are
accumulated from the rescaling factors. If any filtered probability falls below 1e-280, any
entry of an unnormalised message is not a normal float (below 2.2e-308, where precision is
lost), a message sum falls below 1e-300, or an input is not finite, the whole call falls back
to the exact log-space path, which carries ``log Pr(stage_t | y_1..y_t)`` with log-sum-exp.
Neither underflows nor overflows for any finite input (tested at T = 10,000 with
log-likelihoods of 1e5 in magnitude, and on a hand-built case where the fast path would lose
precision). The cost is O(T K^2) with K exponentials per day (fast path).

The fast path is compiled once per number of stages K, with its messages in K-tuples so that
the loops over stages unroll (see :func:`_forward_fast`). Public functions take arrays; the
compiled internals (``_logp_and_grad`` and friends) can be called from other numba code,
which is how the PyTensor Op in :mod:`stressflow.models.numerics.ops` inlines them into the log
density
that nutpie samples.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.cpython.unsafe.tuple import tuple_setitem
from numba.extending import overload
from stressflow.models.numerics.vecmath import exp_inplace, vector_flag

__all__ = [
    "filter_probs",
    "smooth",
    "smooth_many",
    "logp_and_grad",
    "viterbi",
    "sample_paths",
    "log_marginal",
]

_TINY = 1e-300


# Probabilities below this are treated as a possible loss of precision: the fast linear-space
# path hands the whole call to the exact log-space path.
_LOSSY = 1e-280
# Smallest normal float64: an unnormalised message entry below it has lost precision.
_NORMAL = float(np.finfo(np.float64).tiny)
# log_trans entries below this (but finite) would underflow in exp(): use the log-space path.
_LOG_TRANS_MIN = -600.0
# The fast path rescales its unnormalised messages when their sum leaves [_RESCALE, 1/_RESCALE].
_RESCALE = 1e-20


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


def _specialise(k):
    """``(zero, zero2, vec)``: the arguments that select the fast path's compiled
    specialisation for K stages (see :func:`_forward_fast`).

    ``zero, zero2 = (0.0,) * k, (0.0,) * (k * k)``; ``vec`` is
    :func:`stressflow.models.numerics.vecmath.vector_flag`, which loads the vector maths library
    when
    it can be used and encodes in its type whether the compiled code may call it.
    """
    return (0.0,) * k, (0.0,) * (k * k), vector_flag()


def _blank(zero):
    """A fresh K-vector: ``zero`` itself for a tuple, a new array for an array (numba only)."""
    raise NotImplementedError


def _setitem(vec, i, value):
    """``vec`` with item ``i`` set: a new tuple, or the array written in place (numba only)."""
    raise NotImplementedError


@overload(_blank, inline="always")
def _blank_impl(zero):
    if isinstance(zero, types.BaseTuple):
        return lambda zero: zero
    return lambda zero: np.empty(zero.shape[0])


@overload(_setitem, inline="always")
def _setitem_impl(vec, i, value):
    if isinstance(vec, types.BaseTuple):
        return lambda vec, i, value: tuple_setitem(vec, i, value)

    def impl(vec, i, value):
        vec[i] = value
        return vec

    return impl


@njit(cache=True, nogil=True)
def _flat(m, zero2):
    """The ``(K, K)`` array ``m`` flattened row-major into a vector like ``zero2``."""
    out = _blank(zero2)
    flat = m.ravel()
    for i in range(len(zero2)):
        out = _setitem(out, i, flat[i])
    return out


@njit(cache=True, nogil=True)
def _forward_fast(log_init, log_trans, log_lik, zero, zero2, vec):
    """Scaled forward pass in linear space (the fast path).

    ``vec`` (see :func:`_specialise`) selects the vectorised or the scalar ``exp`` by its type.
    ``zero`` and ``zero2`` are tuples of K and K * K zeros (see :func:`_specialise`): the messages
    and the transition matrix live in tuples, so each number of stages gets its own compiled
    specialisation whose loops over stages are unrolled and whose messages stay in registers
    (about 2x faster than arrays at K = 4). Arrays of lengths K and K * K select the generic
    specialisation instead, for compiled callers that know K only at run time.

    Returns ``(alpha, emis, shift, ratio, logp, ok)``:

    - ``alpha[T, K] = Pr(stage_t = k | y_1..y_t)``;
    - ``emis[T, K] = exp(log_lik[t, k] - shift[t])`` with ``shift[t] = max_k log_lik[t, k]``,
      the shifted emission factors reused by the backward pass;
    - ``ratio[T]``: ``log p(y_t | y_1..y_{t-1}) = shift[t] + log(ratio[t])``;
    - ``logp = log p(y_1..y_T)``, accumulated without a logarithm per day;
    - ``ok = False`` if any filtered probability fell below ``_LOSSY``, an entry of the
      unnormalised message below ``_NORMAL`` (a subnormal float), its sum below ``_TINY``, or
      the input is not finite: the caller must then use the exact log-space path.

    The recursion carries the unnormalised message ``a_t = (a_{t-1} P) * emis_t`` and rescales
    it only when its sum drops below ``_RESCALE``, so the division that normalises ``alpha`` is
    off the loop-carried dependency chain.
    """
    n_t = log_lik.shape[0]
    k = len(zero)  # a compile-time constant: the loops over stages unroll
    alpha = np.empty((n_t, k))
    emis = np.empty((n_t, k))
    shift = np.empty(n_t)
    ratio = np.empty(n_t)
    for i in range(k):
        for j in range(k):
            if log_trans[i, j] < _LOG_TRANS_MIN and log_trans[i, j] > -np.inf:
                return alpha, emis, shift, ratio, np.nan, False
    trans = _flat(np.exp(log_trans), zero2)
    finite = True
    for t in range(n_t):
        m = log_lik[t, 0]
        for j in range(1, k):
            m = max(m, log_lik[t, j])
        finite &= np.isfinite(m)
        shift[t] = m
    if not finite:
        return alpha, emis, shift, ratio, np.nan, False
    for t in range(n_t):
        for j in range(k):
            emis[t, j] = log_lik[t, j] - shift[t]
    exp_inplace(emis, vec)  # vectorised (libmvec) where ``vec`` says it is loaded
    a = _blank(zero)
    for j in range(k):
        a = _setitem(a, j, np.exp(log_init[j]) * emis[0, j])
    amin = np.inf
    rawmin = np.inf  # the unnormalised message must stay a normal float (full precision)
    log_scale = 0.0
    inv_prev = 1.0
    for t in range(n_t):
        if t > 0:
            new = _blank(zero)
            for j in range(k):
                pred = 0.0
                for i in range(k):
                    pred += a[i] * trans[i * k + j]
                new = _setitem(new, j, pred * emis[t, j])
            a = new
        c = 0.0
        for j in range(k):
            c += a[j]
        if not (c > _TINY and c < np.inf):
            return alpha, emis, shift, ratio, np.nan, False
        inv = 1.0 / c
        low = a[0]  # this day's smallest entry (a chain independent of the other days')
        for j in range(k):
            alpha[t, j] = a[j] * inv
            low = min(low, a[j])
        rawmin = min(rawmin, low)
        amin = min(amin, low * inv)
        ratio[t] = c * inv_prev
        if c < _RESCALE:
            log_scale += np.log(c)
            for j in range(k):
                a = _setitem(a, j, a[j] * inv)
            inv_prev = 1.0
        else:
            inv_prev = inv
    if not (amin >= _LOSSY and rawmin >= _NORMAL):
        return alpha, emis, shift, ratio, np.nan, False
    logp = shift.sum() + log_scale - np.log(inv_prev)
    return alpha, emis, shift, ratio, logp, True


@njit(cache=True, nogil=True)
def _backward_fast(log_trans, alpha, emis, zero, zero2):
    """Scaled backward pass in linear space given the fast forward pass.

    Returns ``(gamma, xi_sum, ok)`` with ``gamma[T, K] = Pr(stage_t = k | y_1..y_T)``,
    ``xi_sum[K, K] = sum_{t=2..T} Pr(stage_{t-1} = i, stage_t = j | y_1..y_T)`` and
    ``ok = False`` if a normaliser fell below ``_TINY`` or an entry of the unnormalised message
    below ``_NORMAL``.

    The unnormalised message ``b_t = P (emis_{t+1} * b_{t+1})`` is rescaled only when
    ``alpha_t . b_t`` (the normaliser of ``gamma_t``) leaves ``[_RESCALE, 1 / _RESCALE]``; the
    transition matrix factors out of the pairwise sums, ``xi_sum[i, j] = P[i, j] *
    sum_t alpha_t[i] w_{t+1}[j] / (alpha_t . b_t)`` with ``w_{t+1} = emis_{t+1} * b_{t+1}``.
    """
    n_t = alpha.shape[0]
    k = len(zero)
    trans = _flat(np.exp(log_trans), zero2)
    gamma = np.empty((n_t, k))
    acc = np.zeros((k, k))
    beta = _blank(zero)
    for j in range(k):
        beta = _setitem(beta, j, 1.0)
        gamma[n_t - 1, j] = alpha[n_t - 1, j]
    bmin = np.inf  # the unnormalised message must stay a normal float (full precision)
    for t in range(n_t - 2, -1, -1):
        w = _blank(zero)
        for j in range(k):
            w = _setitem(w, j, emis[t + 1, j] * beta[j])
        b = _blank(zero)
        tot = 0.0
        low = np.inf
        for i in range(k):
            s = 0.0
            for j in range(k):
                s += trans[i * k + j] * w[j]
            b = _setitem(b, i, s)
            tot += alpha[t, i] * s
            low = min(low, s)
        bmin = min(bmin, low)
        if not (tot > _TINY and tot < np.inf):
            return gamma, acc, False
        inv = 1.0 / tot
        for i in range(k):
            ai = alpha[t, i] * inv
            gamma[t, i] = ai * b[i]
            for j in range(k):
                acc[i, j] += ai * w[j]
        if tot < _RESCALE or tot > 1.0 / _RESCALE:
            for i in range(k):
                b = _setitem(b, i, b[i] * inv)
        beta = b
    if not bmin >= _NORMAL:
        return gamma, acc, False
    for i in range(k):
        for j in range(k):
            acc[i, j] *= trans[i * k + j]
    return gamma, acc, True


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _log_rows(p):
    out = np.empty_like(p)
    for t in range(p.shape[0]):
        for j in range(p.shape[1]):
            out[t, j] = np.log(p[t, j]) if p[t, j] > 0.0 else -np.inf
    return out


@njit(cache=True, nogil=True)
def _log_norm(shift, ratio):
    out = np.empty_like(shift)
    for t in range(shift.shape[0]):
        out[t] = shift[t] + np.log(ratio[t])
    return out


@njit(cache=True, nogil=True)
def _filter(log_init, log_trans, log_lik, zero, zero2, vec):
    """``(alpha, log_norm, log_alpha_or_empty, fast)`` choosing the path."""
    alpha, _, shift, ratio, _, ok = _forward_fast(log_init, log_trans, log_lik, zero, zero2, vec)
    if ok:
        return alpha, _log_norm(shift, ratio), np.empty((0, 0)), True
    log_alpha, log_norm = _forward_log(log_init, log_trans, log_lik)
    return _exp_rows(log_alpha), log_norm, log_alpha, False


@njit(cache=True, nogil=True)
def _log_marginal(log_init, log_trans, log_lik, zero, zero2, vec):
    _, _, _, _, logp, ok = _forward_fast(log_init, log_trans, log_lik, zero, zero2, vec)
    if ok:
        return logp
    return _forward_log(log_init, log_trans, log_lik)[1].sum()


@njit(cache=True, nogil=True)
def _smooth(log_init, log_trans, log_lik, zero, zero2, vec, want_log_norm):
    """``(gamma, xi_sum, alpha, log_norm, logp)``: fast path, or the exact log-space path.

    ``log_norm`` is computed only if ``want_log_norm`` (an empty array otherwise).
    """
    alpha, emis, shift, ratio, logp, ok = _forward_fast(log_init, log_trans, log_lik, zero,
                                                        zero2, vec)
    if ok:
        gamma, xi_sum, ok = _backward_fast(log_trans, alpha, emis, zero, zero2)
        if ok:
            log_norm = _log_norm(shift, ratio) if want_log_norm else np.empty(0)
            return gamma, xi_sum, alpha, log_norm, logp
    log_alpha, log_norm = _forward_log(log_init, log_trans, log_lik)
    alpha = _exp_rows(log_alpha)
    logp = log_norm.sum()
    if not np.isfinite(log_norm[-1]):
        k = log_init.shape[0]
        return np.full(log_lik.shape, np.nan), np.full((k, k), np.nan), alpha, log_norm, logp
    gamma, xi_sum = _backward_log(log_trans, log_lik, log_alpha)
    return gamma, xi_sum, alpha, log_norm, logp


@njit(cache=True, nogil=True)
def _logp_and_grad(log_init, log_trans, log_lik, zero, zero2, vec):
    gamma, xi_sum, _, _, logp = _smooth(log_init, log_trans, log_lik, zero, zero2, vec, False)
    if not np.isfinite(logp):
        k = log_init.shape[0]
        return (logp, np.full(k, np.nan), np.full((k, k), np.nan),
                np.full(log_lik.shape, np.nan))
    return logp, gamma[0].copy(), xi_sum, gamma


@njit(cache=True, nogil=True)
def _smooth_many(log_init, log_trans, log_lik, zero, zero2, vec, want_log_norm):
    n_draws, n_t, k = log_lik.shape
    gamma = np.empty((n_draws, n_t, k))
    alpha = np.empty((n_draws, n_t, k))
    log_norm = np.empty((n_draws, n_t if want_log_norm else 0))
    for s in range(n_draws):
        g, _, a, ln, _ = _smooth(log_init, log_trans[s], log_lik[s], zero, zero2, vec,
                                 want_log_norm)
        gamma[s] = g
        alpha[s] = a
        if want_log_norm:
            log_norm[s] = ln
    return gamma, alpha, log_norm


def _as_arrays(log_init, log_trans, log_lik):
    """C-contiguous float64 copies (or views) of the three inputs, shapes checked."""
    log_init = np.ascontiguousarray(log_init, dtype=np.float64)
    log_trans = np.ascontiguousarray(log_trans, dtype=np.float64)
    log_lik = np.ascontiguousarray(log_lik, dtype=np.float64)
    k = log_init.shape[0] if log_init.ndim == 1 else -1
    if log_trans.shape != (k, k) or log_lik.ndim != 2 or log_lik.shape[1] != k or k < 1:
        raise ValueError(
            "expected log_init[K], log_trans[K, K], log_lik[T, K]; got shapes "
            f"{log_init.shape}, {log_trans.shape}, {log_lik.shape}"
        )
    if log_lik.shape[0] < 1:
        raise ValueError("log_lik has no time steps (T = 0)")
    return log_init, log_trans, log_lik


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
    args = _as_arrays(log_init, log_trans, log_lik)
    alpha, log_norm, _, _ = _filter(*args, *_specialise(args[0].shape[0]))
    return alpha, log_norm


def log_marginal(log_init, log_trans, log_lik):
    """Marginal log-likelihood ``log p(y_1..y_T)`` with the stages summed out (a float)."""
    args = _as_arrays(log_init, log_trans, log_lik)
    return float(_log_marginal(*args, *_specialise(args[0].shape[0])))


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
    args = _as_arrays(log_init, log_trans, log_lik)
    gamma, xi_sum, alpha, log_norm, _ = _smooth(*args, *_specialise(args[0].shape[0]), True)
    return gamma, xi_sum, alpha, log_norm


def smooth_many(log_init, log_trans, log_lik, *, log_norm: bool = True):
    """:func:`smooth` for a batch of S parameter draws in one compiled call (GIL released).

    Parameters
    ----------
    log_init : ndarray, shape (K,)
    log_trans : ndarray, shape (S, K, K)
    log_lik : ndarray, shape (S, T, K)
    log_norm : bool
        Also return the one-step log predictive densities (one logarithm per day and draw).

    Returns
    -------
    smoothed : ndarray, shape (S, T, K)
        ``Pr(stage_t = k | y_1..y_T, theta^(s))``.
    filtered : ndarray, shape (S, T, K)
        ``Pr(stage_t = k | y_1..y_t, theta^(s))``.
    log_norm : ndarray, shape (S, T), or (S, 0) if not requested
        ``log p(y_t | y_1..y_{t-1}, theta^(s))``.
    """
    log_init = np.ascontiguousarray(log_init, dtype=np.float64)
    log_trans = np.ascontiguousarray(log_trans, dtype=np.float64)
    log_lik = np.ascontiguousarray(log_lik, dtype=np.float64)
    if (log_trans.ndim != 3 or log_lik.ndim != 3 or log_trans.shape[0] != log_lik.shape[0]
            or log_lik.shape[0] < 1):
        raise ValueError(
            "expected log_trans[S, K, K] and log_lik[S, T, K] with S >= 1; got shapes "
            f"{log_trans.shape}, {log_lik.shape}"
        )
    _as_arrays(log_init, log_trans[0], log_lik[0])  # checks K and T
    k = log_init.shape[0]
    return _smooth_many(log_init, log_trans, log_lik, *_specialise(k), log_norm)


def logp_and_grad(log_init, log_trans, log_lik):
    """Marginal log-likelihood and its exact gradient from one forward-backward pass.

    With ``L = log p(y_1..y_T) = log sum_paths exp(log_init[s_1] + sum_t log_trans[s_{t-1}, s_t]
    + sum_t log_lik[t, s_t])``, the partial derivatives are posterior expectations:

    - ``dL/dlog_init[k] = Pr(stage_1 = k | y_1..y_T)``;
    - ``dL/dlog_trans[i, j] = sum_t Pr(stage_{t-1} = i, stage_t = j | y_1..y_T)``;
    - ``dL/dlog_lik[t, k] = Pr(stage_t = k | y_1..y_T)``.

    Returns ``(L, grad_log_init[K], grad_log_trans[K, K], grad_log_lik[T, K])``. The cost is
    O(T K^2), the same order as the forward pass alone. If ``L`` is ``-inf`` or NaN the
    gradients are NaN.
    """
    args = _as_arrays(log_init, log_trans, log_lik)
    logp, g_init, g_trans, g_lik = _logp_and_grad(*args, *_specialise(args[0].shape[0]))
    return float(logp), g_init, g_trans, g_lik


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
    log_init, log_trans, log_lik = _as_arrays(log_init, log_trans, log_lik)
    alpha, log_norm, log_alpha, fast = _filter(log_init, log_trans, log_lik,
                                               *_specialise(log_init.shape[0]))
    if not np.isfinite(log_norm).all():
        raise ValueError("cannot sample stage paths: log p(y) is not finite at these parameters")
    if fast:
        log_alpha = _log_rows(alpha)
    uniforms = rng.random((n_paths, log_lik.shape[0]))
    return _sample_paths(log_trans, log_alpha, uniforms)
