"""Emission-scale structures of the screened designs (EM M-step pieces, NumPy).

``sigma``, ``mu``, ``wsum``: (K, D) stage sds, means and observed weights (sum over days of
``Pr(stage_t = k | y_1..y_T)`` where the observable is present), as in ``em._m_step``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

__all__ = ["share_mp_ff", "pooled_sigma", "pool_log_prior", "mvn_loglik", "full_cov"]

LOG_2PI = float(np.log(2.0 * np.pi))


def share_mp_ff(mu, sigma, wsum, idx, *, mp=2, ff=3, floor=0.05):
    """One Gaussian for margin pressure and forced flow on observables ``idx``: the M step of a
    component shared by the two stages (weighted mean, pooled second moment)."""
    w = wsum[[mp, ff]][:, idx]
    m = mu[[mp, ff]][:, idx]
    shared = (w * m).sum(axis=0) / w.sum(axis=0)
    second = (w * (sigma[[mp, ff]][:, idx] ** 2 + (m - shared) ** 2)).sum(axis=0) / w.sum(axis=0)
    mu, sigma = mu.copy(), sigma.copy()
    for row in (mp, ff):
        mu[row, idx] = shared
        sigma[row, idx] = np.sqrt(np.maximum(second, floor**2))
    return mu, sigma


def pooled_sigma(sigma, wsum, pool, *, floor=0.05, n_iter=50):
    """MAP of ``l = log sigma`` under the partial-pooling prior, given the weighted ML sds.

    Per (k, d) the objective is ``-W l - S exp(-2 l) / 2 - (l - m_d)^2 / (2 pool^2)`` with
    ``W = wsum``, ``S = W sigma_ml^2`` (concave in ``l``: Newton), alternated with ``m_d`` =
    the mean of ``l`` over stages (its MAP under a flat prior)."""
    S = wsum * sigma**2
    lam = 1.0 / pool**2
    ell = np.log(sigma)
    for _ in range(n_iter):
        m = ell.mean(axis=0, keepdims=True)
        for _ in range(3):
            e = S * np.exp(-2.0 * ell)
            grad = -wsum + e - lam * (ell - m)
            ell = ell - grad / (-2.0 * e - lam)
    return np.maximum(np.exp(ell), floor)


def pool_log_prior(sigma, pool) -> float:
    """``sum_kd log N(log sigma_kd | m_d, pool^2)`` up to a constant, ``m_d`` the stage mean."""
    ell = np.log(sigma)
    return float(-0.5 * np.sum((ell - ell.mean(axis=0)) ** 2) / pool**2)


def mvn_loglik(y0, mask, mu, cov):
    """Full-covariance Gaussian ``log N(y_t[obs] | mu_k[obs], cov_k[obs, obs])`` (T, K), the
    missing entries of each row marginalised out (one Cholesky factor per missingness
    pattern and stage)."""
    t, k = y0.shape[0], mu.shape[0]
    out = np.zeros((t, k))
    patterns, which = np.unique(mask > 0, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        rows = np.flatnonzero(which.ravel() == p)
        idx = np.flatnonzero(pattern)
        if idx.size == 0:
            continue
        for j in range(k):
            chol = np.linalg.cholesky(cov[j][np.ix_(idx, idx)])
            dev = y0[np.ix_(rows, idx)] - mu[j, idx]
            z = solve_triangular(chol, dev.T, lower=True)
            out[rows, j] = (-0.5 * idx.size * LOG_2PI - np.log(np.diag(chol)).sum()
                            - 0.5 * (z**2).sum(axis=0))
    return out


def full_cov(gamma, y0, mask, mu, *, floor=0.05):
    """Weighted covariance (K, D, D) from the fully observed rows, plus ``floor^2 I``."""
    full = mask.min(axis=1) > 0
    g, y = gamma[full], y0[full]
    k, d = mu.shape
    cov = np.empty((k, d, d))
    for j in range(k):
        dev = y - mu[j]
        cov[j] = (dev.T * g[:, j]) @ dev / max(float(g[:, j].sum()), 1e-12)
        cov[j] += floor**2 * np.eye(d)
    return cov
