"""Emission-scale structures of the screened designs (EM M-step pieces, NumPy).

``sigma``, ``mu``, ``wsum``: (K, D) stage sds, means and observed weights (sum over days of
``Pr(stage_t = k | y_1..y_T)`` where the observable is present), as in ``em._m_step``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["share_mp_ff", "pooled_sigma", "pool_log_prior"]


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
