"""Independent NumPy/SciPy reference implementations used as test oracles for the HMM kernels.

Convention (same as ``stressflow.models.numerics.kernels``): ``log_init[K]``, ``log_lik[T, K]``
and ``log_trans`` either constant, ``(K, K)`` with ``log_trans[i, j] = log Pr(s_t = j | s_{t-1}
= i)``, or time-varying, ``(T-1, K, K)`` with ``log_trans[t-1, i, j] = log Pr(s_t = j | s_{t-1} =
i)`` for days t = 1..T-1 (0-based). Nothing here is shared with the code under test; everything
is written for clarity, not speed.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp


class BruteForce(NamedTuple):
    log_marginal: float
    smoothed: np.ndarray  # [T, K]
    expected_transitions: np.ndarray  # [K, K], pairwise summed over steps
    map_path: np.ndarray  # [T]
    map_gap: float  # score(best path) - score(second best path); > 0 means no tie
    pairwise: np.ndarray  # [T-1, K, K]: Pr(s_{t-1} = i, s_t = j | y), entry t-1


def per_step(log_trans, n_t):
    """``log_trans`` as one ``(K, K)`` matrix per step: shape ``(T-1, K, K)``."""
    log_trans = np.asarray(log_trans, dtype=float)
    if log_trans.ndim == 3:
        assert log_trans.shape[0] == n_t - 1
        return log_trans
    return np.broadcast_to(log_trans, (n_t - 1, *log_trans.shape))


def path_log_score(log_init, log_trans, log_lik, path):
    """Unnormalised log joint ``log p(s_0..s_{T-1}, y_0..y_{T-1})`` of one stage path."""
    path = np.asarray(path)
    t = np.arange(len(path))
    steps = per_step(log_trans, len(path))
    return (
        log_init[path[0]]
        + steps[t[1:] - 1, path[:-1], path[1:]].sum()
        + log_lik[t, path].sum()
    )


def path_posterior(log_init, log_trans, log_lik):
    """Every one of the K**T paths (rows, in ``itertools.product`` order) and its posterior
    probability ``Pr(s_0..s_{T-1} = path | y_0..y_{T-1})``."""
    n_t, k = log_lik.shape
    paths = np.array(list(itertools.product(range(k), repeat=n_t)))
    scores = np.array([path_log_score(log_init, log_trans, log_lik, p) for p in paths])
    return paths, scores, np.exp(scores - logsumexp(scores))


def brute_force(log_init, log_trans, log_lik):
    """Enumerate all K**T stage paths."""
    n_t, k = log_lik.shape
    paths, scores, weights = path_posterior(log_init, log_trans, log_lik)
    log_z = logsumexp(scores)
    smoothed = np.zeros((n_t, k))
    pairwise = np.zeros((n_t - 1, k, k))
    for p, w in zip(paths, weights, strict=True):
        smoothed[np.arange(n_t), p] += w
        pairwise[np.arange(n_t - 1), p[:-1], p[1:]] += w
    order = np.argsort(scores)[::-1]
    gap = scores[order[0]] - scores[order[1]] if len(scores) > 1 else np.inf
    return BruteForce(float(log_z), smoothed, pairwise.sum(axis=0), paths[order[0]], float(gap),
                      pairwise)


def brute_force_filtered(log_init, log_trans, log_lik):
    """``Pr(s_t | y_0..y_t)`` and ``log p(y_t | y_0..y_{t-1})`` by brute force over prefixes."""
    n_t, k = log_lik.shape
    steps = per_step(log_trans, n_t)
    filtered = np.zeros((n_t, k))
    log_z = np.zeros(n_t)
    for t in range(n_t):
        bf = brute_force(log_init, steps[:t], log_lik[: t + 1])
        filtered[t] = bf.smoothed[-1]
        log_z[t] = bf.log_marginal
    return filtered, np.diff(log_z, prepend=0.0)


def reference_forward_backward(log_init, log_trans, log_lik):
    """Unscaled forward-backward entirely in log space.

    Returns ``(filtered[T, K], smoothed[T, K], log_norm[T], xi)`` with ``xi`` the pairwise
    marginals in the form of ``log_trans``: summed over steps, ``(K, K)``, for a constant one,
    per step, ``(T-1, K, K)``, for a time-varying one.
    """
    n_t, k = log_lik.shape
    steps = per_step(log_trans, n_t)
    log_alpha = np.empty((n_t, k))  # log p(s_t = k, y_0..y_t)
    log_beta = np.zeros((n_t, k))  # log p(y_{t+1}..y_{T-1} | s_t = k)
    log_alpha[0] = log_init + log_lik[0]
    for t in range(1, n_t):
        log_alpha[t] = logsumexp(log_alpha[t - 1][:, None] + steps[t - 1], axis=0) + log_lik[t]
    for t in range(n_t - 2, -1, -1):
        log_beta[t] = logsumexp(steps[t] + (log_lik[t + 1] + log_beta[t + 1])[None, :], axis=1)
    log_prefix = logsumexp(log_alpha, axis=1)  # log p(y_0..y_t)
    filtered = np.exp(log_alpha - log_prefix[:, None])
    log_norm = np.diff(log_prefix, prepend=0.0)
    # Each posterior row/matrix is normalised on its own rather than by log p(y_0..y_{T-1}):
    # with |log p| ~ 1e7 the rounding accumulated along log_alpha would otherwise show up as
    # ~1e-7 relative errors in the posteriors.
    log_gamma = log_alpha + log_beta
    smoothed = np.exp(log_gamma - logsumexp(log_gamma, axis=1, keepdims=True))
    xi = np.zeros((n_t - 1, k, k))
    for t in range(1, n_t):
        log_xi = log_alpha[t - 1][:, None] + steps[t - 1] + (log_lik[t] + log_beta[t])[None, :]
        xi[t - 1] = np.exp(log_xi - logsumexp(log_xi))
    return filtered, smoothed, log_norm, (xi if np.ndim(log_trans) == 3 else xi.sum(axis=0))
