"""Independent NumPy/SciPy reference implementations used as test oracles for the HMM kernels.

Convention (same as ``stressflow.models.numerics.kernels``): ``log_init[K]``, ``log_trans[K, K]``
with
``log_trans[i, j] = log Pr(s_t = j | s_{t-1} = i)``, ``log_lik[T, K]``. Nothing here is shared
with the code under test; everything is written for clarity, not speed.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp


class BruteForce(NamedTuple):
    log_marginal: float
    smoothed: np.ndarray  # [T, K]
    expected_transitions: np.ndarray  # [K, K]
    map_path: np.ndarray  # [T]
    map_gap: float  # score(best path) - score(second best path); > 0 means no tie


def path_log_score(log_init, log_trans, log_lik, path):
    """Unnormalised log joint ``log p(s_1..s_T, y_1..y_T)`` of one stage path."""
    path = np.asarray(path)
    t = np.arange(len(path))
    return (
        log_init[path[0]]
        + log_trans[path[:-1], path[1:]].sum()
        + log_lik[t, path].sum()
    )


def brute_force(log_init, log_trans, log_lik):
    """Enumerate all K**T stage paths."""
    n_t, k = log_lik.shape
    paths = np.array(list(itertools.product(range(k), repeat=n_t)))
    scores = np.array([path_log_score(log_init, log_trans, log_lik, p) for p in paths])
    log_z = logsumexp(scores)
    weights = np.exp(scores - log_z)  # posterior probability of each path
    smoothed = np.zeros((n_t, k))
    counts = np.zeros((k, k))
    for p, w in zip(paths, weights, strict=True):
        smoothed[np.arange(n_t), p] += w
        np.add.at(counts, (p[:-1], p[1:]), w)
    order = np.argsort(scores)[::-1]
    gap = scores[order[0]] - scores[order[1]] if len(scores) > 1 else np.inf
    return BruteForce(float(log_z), smoothed, counts, paths[order[0]], float(gap))


def brute_force_filtered(log_init, log_trans, log_lik):
    """``Pr(s_t | y_1..y_t)`` and ``log p(y_t | y_1..y_{t-1})`` by brute force over prefixes."""
    n_t, k = log_lik.shape
    filtered = np.zeros((n_t, k))
    log_z = np.zeros(n_t)
    for t in range(n_t):
        bf = brute_force(log_init, log_trans, log_lik[: t + 1])
        filtered[t] = bf.smoothed[-1]
        log_z[t] = bf.log_marginal
    return filtered, np.diff(log_z, prepend=0.0)


def reference_forward_backward(log_init, log_trans, log_lik):
    """Unscaled forward-backward entirely in log space.

    Returns ``(filtered[T, K], smoothed[T, K], log_norm[T], expected_transitions[K, K])``.
    """
    n_t, k = log_lik.shape
    log_alpha = np.empty((n_t, k))  # log p(s_t = k, y_1..y_t)
    log_beta = np.zeros((n_t, k))  # log p(y_{t+1}..y_T | s_t = k)
    log_alpha[0] = log_init + log_lik[0]
    for t in range(1, n_t):
        log_alpha[t] = logsumexp(log_alpha[t - 1][:, None] + log_trans, axis=0) + log_lik[t]
    for t in range(n_t - 2, -1, -1):
        log_beta[t] = logsumexp(log_trans + (log_lik[t + 1] + log_beta[t + 1])[None, :], axis=1)
    log_prefix = logsumexp(log_alpha, axis=1)  # log p(y_1..y_t)
    filtered = np.exp(log_alpha - log_prefix[:, None])
    log_norm = np.diff(log_prefix, prepend=0.0)
    # Each posterior row/matrix is normalised on its own rather than by log p(y_1..y_T): with
    # |log p| ~ 1e7 the rounding accumulated along log_alpha would otherwise show up as ~1e-7
    # relative errors in the posteriors.
    log_gamma = log_alpha + log_beta
    smoothed = np.exp(log_gamma - logsumexp(log_gamma, axis=1, keepdims=True))
    xi = np.zeros((k, k))
    for t in range(1, n_t):
        log_xi = log_alpha[t - 1][:, None] + log_trans + (log_lik[t] + log_beta[t])[None, :]
        xi += np.exp(log_xi - logsumexp(log_xi))
    return filtered, smoothed, log_norm, xi
