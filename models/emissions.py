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

__all__ = ["EMISSIONS", "emission_loglik", "masked_observations", "gaussian_design",
           "gaussian_loglik"]

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


def gaussian_design(y0, mask, *, xp: ModuleType = np):
    """Data part of the Gaussian log-density: ``(design[T, 3D], offset[T])``.

    Expanding the square, ``sum_d m_td log N(y_td | mu_kd, sigma_kd) = design_t . w_k +
    offset_t`` with ``design_t = (y_t**2, y_t, m_t)`` (y0 is 0 wherever the mask is 0, the
    contract of :func:`masked_observations`), ``offset_t = -0.5 log(2 pi) sum_d m_td`` and the
    parameter weights ``w_k`` of :func:`gaussian_loglik`. The design does not depend on the
    parameters, so a model stores it once as data and each log-density evaluation is a single
    ``(T, 3D) x (3D, K)`` product (and its gradient a single transposed product).
    """
    design = xp.concatenate([y0**2, y0, mask], axis=-1)
    offset = -0.5 * _LOG_2PI * mask.sum(axis=-1)
    return design, offset


def gaussian_loglik(design, offset, mu, sigma, *, xp: ModuleType = np):
    """``log p(y_t | stage_t = k)`` for Gaussian emissions, from :func:`gaussian_design`.

    ``mu, sigma`` have shape (..., K, D); returns shape (..., T, K). The weights of stage k are
    ``(-1 / (2 sigma_k**2), mu_k / sigma_k**2, -mu_k**2 / (2 sigma_k**2) - log sigma_k)``.
    """
    prec = 1.0 / sigma**2
    weights = xp.concatenate(
        [-0.5 * prec, mu * prec, -0.5 * mu**2 * prec - xp.log(sigma)], axis=-1
    )  # (..., K, 3D)
    return design @ _mT(weights, xp) + offset[:, None]


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
    if nu is None:
        design, offset = gaussian_design(y0, mask, xp=xp)
        return gaussian_loglik(design, offset, mu, sigma, xp=xp)
    log_sigma = xp.log(sigma)
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
