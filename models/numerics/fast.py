"""The fast linear-space forward-backward path of the HMM kernels (compiled code).

See :mod:`stressflow.models.numerics.kernels` for the conventions and for when the exact
log-space path (:mod:`stressflow.models.numerics.logspace`) takes over; the functions here
report that hand-over with a flag ``ok = False`` and never fall back themselves.

The path is compiled once per number of stages K, with its messages in K-tuples so that the
loops over stages unroll (see :func:`forward_fast`), and once per form of ``log_trans``
(constant ``(K, K)`` or time-varying ``(T-1, K, K)``, see
:mod:`stressflow.models.numerics.steps`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.cpython.unsafe.tuple import tuple_setitem
from numba.extending import overload
from stressflow.models.numerics.steps import is_time_varying, trans_at
from stressflow.models.numerics.vecmath import exp_inplace, vector_flag

__all__ = ["MAX_UNROLLED_STAGES", "specialise", "transitions", "forward_fast", "backward_fast",
           "log_norm_from"]

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
# A "dense" transition table: every probability of every step is at least exp(-300). Then each
# stage of each day receives at least exp(-300) times the message's mass from the other stages,
# so an entry that is tiny (below _LOSSY after normalising) or subnormal contributes a relative
# error below 1e-280 / exp(-300) ~ 1e-150 to any later message, and the fast path stays exact to
# rounding without the two precision checks (a panel model's 16-64 joint states with well
# separated emissions trip them on nearly every evaluation; the log-space path is then ~30x
# slower). A table with structural zeros (the sequential ladder) keeps both checks.
_DENSE_MIN = float(np.exp(-300.0))


#: Largest K whose fast path unrolls its loops over K-tuples; above it the work vectors are
#: arrays: the unrolled code of a K * K-tuple compiles slowly and, from K = 7, runs slower than
#: the loops over arrays, and numba refuses tuples of 1,000 items or more (the joint states of
#: a panel model reach K = 16-32).
MAX_UNROLLED_STAGES = 6


def specialise(k):
    """``(zero, zero2, vec)``: the arguments that select the fast path's compiled
    specialisation for K stages (see :func:`forward_fast`).

    ``zero, zero2 = (0.0,) * k, (0.0,) * (k * k)`` for ``k <= MAX_UNROLLED_STAGES``, zero
    arrays of those lengths above it (one specialisation for every larger K); ``vec`` is
    :func:`stressflow.models.numerics.vecmath.vector_flag`, which loads the vector maths library
    when it can be used and encodes in its type whether the compiled code may call it.
    """
    if k > MAX_UNROLLED_STAGES:
        return np.zeros(k), np.zeros(k * k), vector_flag()
    return (0.0,) * k, (0.0,) * (k * k), vector_flag()


def _blank(zero):
    """A fresh K-vector: ``zero`` itself for a tuple, a new array for an array (numba only)."""
    raise NotImplementedError


def _setitem(vec, i, value):
    """``vec`` with item ``i`` set: a new tuple, or the array written in place (numba only)."""
    raise NotImplementedError


def _exp_table(log_trans, zero2, vec):
    """``exp(log_trans)`` as :func:`transitions` returns it (numba only)."""
    raise NotImplementedError


def _dense(trans):
    """Whether every transition probability of the fast path's table is >= ``_DENSE_MIN``
    (numba only)."""
    raise NotImplementedError


def _pairs_out(trans, k):
    """Storage for :func:`backward_fast`'s pairwise marginals: new ``(K, K)`` zeros for a
    constant ``trans``; a time-varying ``trans`` table itself, overwritten step by step (it
    has the output's shape and each step is read for the last time just before it is
    written, so no second array of T K^2 floats is needed). numba only."""
    raise NotImplementedError


def _pair_put(acc, t, i, j, value):
    """Pair ``(stage_t = i, stage_{t+1} = j)`` without its transition factor: ``acc[i, j] +=
    value`` (constant), or ``acc[t, i, j] *= value`` on the table (time-varying). numba only."""
    raise NotImplementedError


def _pairs_finish(acc, trans, k):
    """Apply the constant transition factor, ``acc[i, j] *= P[i, j]``, once for all steps (the
    time-varying table already holds it). numba only."""
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


@overload(_exp_table, inline="always")
def _exp_table_impl(log_trans, zero2, vec):
    if is_time_varying(log_trans):

        def impl(log_trans, zero2, vec):
            table = log_trans.copy()  # C-contiguous
            exp_inplace(table, vec)
            return table

        return impl
    return lambda log_trans, zero2, vec: _flat(np.exp(log_trans), zero2)


@overload(_dense, inline="always")
def _dense_impl(trans):
    if is_time_varying(trans):
        return lambda trans: trans.size == 0 or trans.min() >= _DENSE_MIN

    def impl(trans):  # a flat K*K tuple or vector
        low = np.inf
        for x in trans:
            low = min(low, x)
        return low >= _DENSE_MIN

    return impl


@overload(_pairs_out, inline="always")
def _pairs_out_impl(trans, k):
    if is_time_varying(trans):
        return lambda trans, k: trans
    return lambda trans, k: np.zeros((k, k))


@overload(_pair_put, inline="always")
def _pair_put_impl(acc, t, i, j, value):
    if is_time_varying(acc):

        def impl(acc, t, i, j, value):
            acc[t, i, j] *= value

        return impl

    def impl_sum(acc, t, i, j, value):
        acc[i, j] += value

    return impl_sum


@overload(_pairs_finish, inline="always")
def _pairs_finish_impl(acc, trans, k):
    if is_time_varying(trans):
        return lambda acc, trans, k: None

    def impl(acc, trans, k):
        for i in range(k):
            for j in range(k):
                acc[i, j] *= trans_at(trans, 1, i, j, k)

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
def transitions(log_trans, zero2, vec):
    """``(trans, ok)``: the transition probabilities in the form the fast recursions read.

    For a constant ``log_trans[K, K]``, ``trans`` is ``exp(log_trans)`` flattened row-major
    into a vector like ``zero2`` (a K*K tuple in the K-specialised path); for a time-varying
    ``log_trans[T-1, K, K]`` it is the array ``exp(log_trans)`` of the same shape (computed
    with the vector exp where ``vec`` allows). ``ok = False`` if any entry of any step is
    finite but below ``_LOG_TRANS_MIN``, whose exponential would lose precision: the caller
    must then use the exact log-space path.
    """
    ok = True
    for x in log_trans.ravel():
        if x < _LOG_TRANS_MIN and x > -np.inf:
            ok = False
    return _exp_table(log_trans, zero2, vec), ok


@njit(cache=True, nogil=True)
def forward_fast(log_init, trans, log_lik, zero, vec):
    """Scaled forward pass in linear space (the fast path).

    ``trans`` comes from :func:`transitions`. ``vec`` (see :func:`specialise`) selects the
    vectorised or the scalar ``exp`` by its type. ``zero`` is a tuple of K zeros (see
    :func:`specialise`): the messages (and a constant transition matrix) live in tuples, so each
    number of stages gets its own compiled specialisation whose loops over stages are unrolled
    and whose messages stay in registers (about 2x faster than arrays at K = 4). Arrays of
    lengths K and K * K select the generic specialisation instead, for compiled callers that
    know K only at run time.

    Returns ``(alpha, emis, shift, ratio, logp, ok)``:

    - ``alpha[T, K] = Pr(stage_t = k | y_0..y_t)``;
    - ``emis[T, K] = exp(log_lik[t, k] - shift[t])`` with ``shift[t] = max_k log_lik[t, k]``,
      the shifted emission factors reused by the backward pass;
    - ``ratio[T]``: ``log p(y_t | y_0..y_{t-1}) = shift[t] + log(ratio[t])``;
    - ``logp = log p(y_0..y_{T-1})``, accumulated without a logarithm per day;
    - ``ok = False`` if any filtered probability fell below ``_LOSSY`` or an entry of the
      unnormalised message below ``_NORMAL`` (a subnormal float) while the transition table is
      not dense (an entry below ``_DENSE_MIN``), if its sum fell below ``_TINY``, or if
      ``log_lik`` is not finite: the caller must then use the exact log-space path.

    The recursion carries the unnormalised message ``a_t = (a_{t-1} P_t) * emis_t`` (``P_t``
    the matrix of the move into day t) and rescales it only when its sum drops below
    ``_RESCALE``, so the division that normalises ``alpha`` is off the loop-carried
    dependency chain.
    """
    n_t = log_lik.shape[0]
    k = len(zero)  # a compile-time constant: the loops over stages unroll
    alpha = np.empty((n_t, k))
    emis = np.empty((n_t, k))
    shift = np.empty(n_t)
    ratio = np.empty(n_t)
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
                    pred += a[i] * trans_at(trans, t, i, j, k)
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
    if not (amin >= _LOSSY and rawmin >= _NORMAL) and not _dense(trans):
        return alpha, emis, shift, ratio, np.nan, False
    logp = shift.sum() + log_scale - np.log(inv_prev)
    return alpha, emis, shift, ratio, logp, True


@njit(cache=True, nogil=True)
def backward_fast(trans, alpha, emis, zero):
    """Scaled backward pass in linear space given the fast forward pass.

    Returns ``(gamma, xi, ok)`` with ``gamma[T, K] = Pr(stage_t = k | y_0..y_{T-1})``, the
    pairwise marginals ``xi`` and ``ok = False`` if a normaliser fell below ``_TINY`` or, with
    a transition table that is not dense, an entry of the unnormalised message below
    ``_NORMAL``. For a constant ``trans``, ``xi[K, K] =
    sum_{t=1..T-1} Pr(stage_{t-1} = i, stage_t = j | y_0..y_{T-1})``; for a time-varying one,
    ``xi[t-1, i, j] = Pr(stage_{t-1} = i, stage_t = j | y_0..y_{T-1})``, shape ``(T-1, K, K)``
    (days 0-based): the time-varying ``trans`` array itself, overwritten (also when ``ok`` is
    False, so it must not be used again).

    The unnormalised message ``b_t = P_{t+1} (emis_{t+1} * b_{t+1})`` is rescaled only when
    ``alpha_t . b_t`` (the normaliser of ``gamma_t``) leaves ``[_RESCALE, 1 / _RESCALE]``; the
    transition probabilities factor out of the pairwise terms, ``xi_t[i, j] = P_{t+1}[i, j] *
    alpha_t[i] w_{t+1}[j] / (alpha_t . b_t)`` with ``w_{t+1} = emis_{t+1} * b_{t+1}``.
    """
    n_t = alpha.shape[0]
    k = len(zero)
    dense = _dense(trans)  # before a time-varying table is overwritten by the pairs
    gamma = np.empty((n_t, k))
    acc = _pairs_out(trans, k)
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
                s += trans_at(trans, t + 1, i, j, k) * w[j]
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
                _pair_put(acc, t, i, j, ai * w[j])
        if tot < _RESCALE or tot > 1.0 / _RESCALE:
            for i in range(k):
                b = _setitem(b, i, b[i] * inv)
        beta = b
    if not (bmin >= _NORMAL or dense):
        return gamma, acc, False
    _pairs_finish(acc, trans, k)
    return gamma, acc, True


@njit(cache=True, nogil=True)
def log_norm_from(shift, ratio):
    """``log p(y_t | y_0..y_{t-1}) = shift[t] + log(ratio[t])`` from :func:`forward_fast`."""
    out = np.empty_like(shift)
    for t in range(shift.shape[0]):
        out[t] = shift[t] + np.log(ratio[t])
    return out
