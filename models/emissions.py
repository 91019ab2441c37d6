"""Per-stage emission log-densities: the only place where the observables meet the stages.

A model builds ``log_lik[T, K] = log p(y_t | stage_t = k)`` here and hands it to the HMM
kernels, which never see the emission model. The same function serves the PyMC graph
(``xp=pytensor.tensor``) and the NumPy post-processing of posterior draws (``xp=numpy``), so the
likelihood that is sampled and the one used for stage probabilities cannot drift apart.

Conditional on the stage, the D observables are independent (diagonal covariance):

- Gaussian:   ``log p(y_t | k) = sum_d m_td * log N(y_td | mu_kd, sigma_kd)``
- Student-t:  ``log p(y_t | k) = sum_d m_td * log t_nu_k(y_td | mu_kd, sigma_kd)``

where ``m_td`` is 1 if feature d is observed on day t and 0 if it is missing, so a missing
value is skipped in the likelihood and a day with nothing observed contributes a zero row.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

__all__ = ["EMISSIONS", "emission_loglik", "masked_observations"]

EMISSIONS = ("gaussian", "student_t")

_LOG_2PI = math.log(2.0 * math.pi)


def masked_observations(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a ``(T, D)`` array with NaN for missing values into ``(y0, mask)``.

    ``y0`` has the missing entries replaced by 0 and ``mask`` is 1.0 where observed, 0.0 where
    missing; both are float64 arrays of shape (T, D).
    """
    y = np.asarray(features, dtype=np.float64)
    mask = np.isfinite(y)
    return np.where(mask, y, 0.0), mask.astype(np.float64)


def _mT(x, xp):
    return xp.swapaxes(x, -1, -2)


def emission_loglik(y0, mask, mu, sigma, nu=None, *, xp: ModuleType = np, gammaln=None):
    """``log p(y_t | stage_t = k)`` for every day and stage.

    Parameters
    ----------
    y0, mask : arrays, shape (T, D)
        Observations with missing entries set to 0 (required: the Gaussian branch relies on
        it), and the 0/1 observation mask (see :func:`masked_observations`).
    mu, sigma : arrays, shape (..., K, D)
        Per-stage location and scale; leading dims (e.g. posterior draws) broadcast.
    nu : array, shape (..., K), optional
        Per-stage Student-t degrees of freedom; ``None`` for Gaussian emissions.
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    gammaln : callable, optional
        Log-gamma function of the same backend (needed for Student-t only).

    Returns
    -------
    array, shape (..., T, K)
        ``log p(y_t | stage_t = k)``, with missing features skipped.
    """
    log_sigma = xp.log(sigma)
    n_obs = mask.sum(axis=-1)[:, None]
    if nu is None:
        # Quadratic expansion: three (T, D) x (D, K) products instead of a (T, K, D) tensor.
        # y0 is 0 wherever mask is 0 (the contract of masked_observations), so the masked
        # sums need no multiplication by the mask.
        prec = 1.0 / sigma**2
        quad = (
            y0**2 @ _mT(prec, xp)
            - 2.0 * (y0 @ _mT(mu * prec, xp))
            + mask @ _mT(mu**2 * prec, xp)
        )
        return -0.5 * quad - mask @ _mT(log_sigma, xp) - 0.5 * _LOG_2PI * n_obs
    if gammaln is None:
        raise ValueError("Student-t emissions need the backend's gammaln")
    # (..., T, K, D) elementwise Student-t log density
    y = y0[..., :, None, :]
    m = mask[..., :, None, :]
    z = (y - mu[..., None, :, :]) / sigma[..., None, :, :]
    nu_ = nu[..., None, :, None]
    logpdf = (
        gammaln((nu_ + 1.0) / 2.0)
        - gammaln(nu_ / 2.0)
        - 0.5 * xp.log(nu_ * math.pi)
        - log_sigma[..., None, :, :]
        - (nu_ + 1.0) / 2.0 * xp.log1p(z**2 / nu_)
    )
    return (m * logpdf).sum(axis=-1)
