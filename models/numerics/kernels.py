"""Hidden Markov model kernels: pure functions of ``(log_init, log_trans, log_lik)``.

This is the plain-array layer of stressflow. Every function here takes

- ``log_init[K]``: ``log Pr(stage_0 = k)`` (days, and observations ``y_t``, are numbered
  t = 0..T-1 in this module);
- ``log_trans``: the log transition probabilities, in one of two forms:

  - constant, shape ``(K, K)``: ``log_trans[i, j] = log Pr(stage_t = j | stage_{t-1} = i)``
    for every t;
  - time-varying, shape ``(T-1, K, K)``: ``log_trans[t-1, i, j] = log Pr(stage_t = j |
    stage_{t-1} = i)`` for t = 1..T-1, i.e. entry ``t-1`` drives the move INTO day ``t``
    (for T = 1 the array has shape ``(0, K, K)``);

  rows are log-probability vectors (this is the contract; it is not checked, and the
  functions compute the path sums below for any ``log_trans``); ``-inf`` marks a forbidden
  transition;
- ``log_lik[T, K]``: ``log p(y_t | stage_t = k)``. A day with no observation has a row of
  zeros (it contributes nothing to the likelihood but keeps its place in time);

and knows nothing about the emission model that produced ``log_lik``. All arrays are float64.
Outputs that hold pairwise (transition) marginals take the form of ``log_trans``: summed over
the T-1 steps, ``(K, K)``, for a constant ``log_trans``; one ``(K, K)`` matrix per step,
``(T-1, K, K)``, for a time-varying one.

Numerics. Two paths agree to rounding. The fast path works in linear space: the emission
factor of each day is formed in log space and shifted by its maximum before exponentiation;
the unnormalised forward message is rescaled whenever its sum drops below 1e-20 and the
backward message whenever its normaliser leaves [1e-20, 1e20], and the log normalisers are
accumulated from the rescaling factors. If any filtered probability falls below 1e-280, any
entry of an unnormalised message is not a normal float (below 2.2e-308, where precision is
lost), a message sum falls below 1e-300, an entry of ``log_trans`` (of any step) is finite but
below -600, or ``log_lik`` is not finite, the whole call falls back to the exact log-space
path, which carries ``log Pr(stage_t | y_0..y_t)`` with log-sum-exp. Neither underflows nor
overflows for any finite input (tested at T = 10,000 with log-likelihoods of 1e5 in
magnitude, and on a hand-built case where the fast path would lose precision). The cost is
O(T K^2) with K exponentials per day (fast path), plus K^2 per day for a time-varying
``log_trans``.

Layout. The fast path is compiled once per number of stages K, with its messages in K-tuples
so that the loops over stages unroll (:mod:`stressflow.models.numerics.fast`); the exact path,
Viterbi and backward sampling are in :mod:`stressflow.models.numerics.logspace`; the choice
between the two paths is made by compiled functions in
:mod:`stressflow.models.numerics.compiled`, which other numba code can call: that is how the
PyTensor Op in :mod:`stressflow.models.numerics.ops` inlines them into the log density that
nutpie samples. This module holds the public functions and their input checks.
"""

from __future__ import annotations

import numpy as np
from stressflow.models.numerics import compiled
from stressflow.models.numerics.fast import specialise
from stressflow.models.numerics.logspace import log_rows, sample_backward, viterbi_path

__all__ = [
    "filter_probs",
    "smooth",
    "smooth_many",
    "logp_and_grad",
    "viterbi",
    "sample_paths",
    "log_marginal",
]


def _float_array(x):
    return np.ascontiguousarray(x, dtype=np.float64)


def _check_trans(log_trans, k: int, n_t: int) -> None:
    """Raise a ValueError unless ``log_trans`` is ``(K, K)`` or ``(T-1, K, K)``."""
    if log_trans.shape == (k, k) or log_trans.shape == (n_t - 1, k, k):
        return
    raise ValueError(
        f"expected log_trans of shape (K, K) = ({k}, {k}) (constant) or (T-1, K, K) = "
        f"({n_t - 1}, {k}, {k}) (time-varying, entry t-1 for the move into day t); "
        f"got {log_trans.shape}"
    )


def _as_arrays(log_init, log_trans, log_lik):
    """C-contiguous float64 copies (or views) of the three inputs, shapes checked."""
    log_init, log_trans, log_lik = (_float_array(x) for x in (log_init, log_trans, log_lik))
    k = log_init.shape[0] if log_init.ndim == 1 else 0
    if k < 1 or log_lik.ndim != 2 or log_lik.shape[1] != k:
        raise ValueError(
            "expected log_init[K], log_trans[K, K] or [T-1, K, K], log_lik[T, K]; got shapes "
            f"{log_init.shape}, {log_trans.shape}, {log_lik.shape}"
        )
    if log_lik.shape[0] < 1:
        raise ValueError("log_lik has no time steps (T = 0)")
    _check_trans(log_trans, k, log_lik.shape[0])
    for name, x in (("log_init", log_init), ("log_trans", log_trans), ("log_lik", log_lik)):
        _check_values(name, x)
    return log_init, log_trans, log_lik


def _check_values(name: str, x: np.ndarray) -> None:
    """Raise a ValueError naming the first NaN or +inf entry (``-inf``, an impossible stage or
    observation, is allowed)."""
    bad = np.isnan(x) | (x == np.inf)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN or +inf entr{'y' if bad.sum() == 1 else 'ies'} "
            f"(first at index {where}: {x[where]}); log-probabilities must be finite or -inf"
        )


def filter_probs(log_init, log_trans, log_lik):
    """Filtered stage probabilities and one-step log predictive densities.

    Returns
    -------
    filtered : ndarray, shape (T, K)
        ``Pr(stage_t = k | y_0..y_t)``; each row sums to 1.
    log_norm : ndarray, shape (T,)
        ``log p(y_t | y_0..y_{t-1})`` (``log p(y_0)`` for t = 0). Their sum is the marginal
        log-likelihood ``log p(y_0..y_{T-1})``.
    """
    args = _as_arrays(log_init, log_trans, log_lik)
    alpha, log_norm, _, _ = compiled.filter_probs(*args, *specialise(args[0].shape[0]))
    return alpha, log_norm


def log_marginal(log_init, log_trans, log_lik):
    """Marginal log-likelihood ``log p(y_0..y_{T-1})`` with the stages summed out (a float)."""
    args = _as_arrays(log_init, log_trans, log_lik)
    return float(compiled.log_marginal(*args, *specialise(args[0].shape[0])))


def smooth(log_init, log_trans, log_lik):
    """Forward-backward smoother.

    Returns
    -------
    smoothed : ndarray, shape (T, K)
        ``Pr(stage_t = k | y_0..y_{T-1})``; each row sums to 1.
    expected_transitions : ndarray, shape (K, K) or (T-1, K, K) (the shape of ``log_trans``)
        For a constant ``log_trans``: ``sum_{t=1..T-1} Pr(stage_{t-1} = i, stage_t = j |
        y_0..y_{T-1})``, the posterior expected number of i -> j transitions. For a
        time-varying one: entry ``[t-1, i, j] = Pr(stage_{t-1} = i, stage_t = j |
        y_0..y_{T-1})``, the pairwise smoothed marginal of the move into day t (each
        ``[t-1]`` sums to 1).
    filtered : ndarray, shape (T, K)
        ``Pr(stage_t = k | y_0..y_t)``.
    log_norm : ndarray, shape (T,)
        ``log p(y_t | y_0..y_{t-1})``.
    """
    args = _as_arrays(log_init, log_trans, log_lik)
    gamma, xi, alpha, log_norm, _ = compiled.smooth(*args, *specialise(args[0].shape[0]), True)
    return gamma, xi, alpha, log_norm


def smooth_many(log_init, log_trans, log_lik, *, log_norm: bool = True):
    """:func:`smooth` for a batch of S parameter draws in one compiled call (GIL released).

    Parameters
    ----------
    log_init : ndarray, shape (K,)
    log_trans : ndarray, shape (S, K, K) or (S, T-1, K, K)
        Draw s's transition matrix, constant or time-varying.
    log_lik : ndarray, shape (S, T, K)
    log_norm : bool
        Also return the one-step log predictive densities (one logarithm per day and draw).

    Returns
    -------
    smoothed : ndarray, shape (S, T, K)
        ``Pr(stage_t = k | y_0..y_{T-1}, theta^(s))``.
    filtered : ndarray, shape (S, T, K)
        ``Pr(stage_t = k | y_0..y_t, theta^(s))``.
    log_norm : ndarray, shape (S, T), or (S, 0) if not requested
        ``log p(y_t | y_0..y_{t-1}, theta^(s))``.
    """
    log_init, log_trans, log_lik = (_float_array(x) for x in (log_init, log_trans, log_lik))
    if (log_trans.ndim not in (3, 4) or log_lik.ndim != 3 or log_lik.shape[0] < 1
            or log_trans.shape[0] != log_lik.shape[0]):
        raise ValueError(
            "expected log_trans[S, K, K] or [S, T-1, K, K] and log_lik[S, T, K] with S >= 1; "
            f"got shapes {log_trans.shape}, {log_lik.shape}"
        )
    _as_arrays(log_init, log_trans[0], log_lik[0])  # checks K and T
    k = log_init.shape[0]
    return compiled.smooth_many(log_init, log_trans, log_lik, *specialise(k), log_norm)


def logp_and_grad(log_init, log_trans, log_lik):
    """Marginal log-likelihood and its exact gradient from one forward-backward pass.

    With ``L = log p(y_0..y_{T-1}) = log sum_paths exp(log_init[s_0] + sum_{t=1..T-1}
    log P_t[s_{t-1}, s_t] + sum_{t=0..T-1} log_lik[t, s_t])``, where ``log P_t`` is
    ``log_trans`` (constant) or ``log_trans[t-1]`` (time-varying), the partial derivatives are
    posterior expectations:

    - ``dL/dlog_init[k] = Pr(stage_0 = k | y_0..y_{T-1})``;
    - constant: ``dL/dlog_trans[i, j] = sum_{t=1..T-1} Pr(stage_{t-1} = i, stage_t = j |
      y_0..y_{T-1})``; time-varying: ``dL/dlog_trans[t-1, i, j] = Pr(stage_{t-1} = i,
      stage_t = j | y_0..y_{T-1})``;
    - ``dL/dlog_lik[t, k] = Pr(stage_t = k | y_0..y_{T-1})``.

    Returns ``(L, grad_log_init[K], grad_log_trans, grad_log_lik[T, K])`` with
    ``grad_log_trans`` of the shape of ``log_trans``. The cost is O(T K^2), the same order as
    the forward pass alone. If ``L`` is ``-inf`` or NaN the gradients are NaN.
    """
    args = _as_arrays(log_init, log_trans, log_lik)
    logp, g_init, g_trans, g_lik = compiled.logp_and_grad(*args, *specialise(args[0].shape[0]))
    return float(logp), g_init, g_trans, g_lik


def viterbi(log_init, log_trans, log_lik):
    """Most probable stage path ``argmax_s Pr(stage_0..stage_{T-1} = s | y_0..y_{T-1})``.

    Returns an int64 array of shape (T,) with stage indices. Ties go to the lower index.
    """
    return viterbi_path(*_as_arrays(log_init, log_trans, log_lik))


def sample_paths(log_init, log_trans, log_lik, n_paths, rng):
    """Forward-filtering backward-sampling (FFBS) of whole stage paths.

    Draws ``n_paths`` independent paths from the joint posterior
    ``Pr(stage_0..stage_{T-1} | y_0..y_{T-1})`` at the given parameters. The backward sampling
    runs in log space, so stages whose filtered probability underflows are still sampled
    correctly.

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
    alpha, log_norm, log_alpha, fast = compiled.filter_probs(
        log_init, log_trans, log_lik, *specialise(log_init.shape[0])
    )
    if not np.isfinite(log_norm).all():
        raise ValueError("cannot sample stage paths: log p(y) is not finite at these parameters")
    if fast:
        log_alpha = log_rows(alpha)
    uniforms = rng.random((n_paths, log_lik.shape[0]))
    return sample_backward(log_trans, log_alpha, uniforms)
