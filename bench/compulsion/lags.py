"""The autoregressive emission of the screen's ``Design.lag`` observables (rounds 14, 16).

``y_td = mu_kd + phi_d y_{t-1,d} + e_td``, ``e_td ~ N(0, sigma_kd^2)``: one ``phi_d`` per
observable shared by the stages (Krolzig's MSI-AR, the stage shifts the intercept). The EM of
:mod:`.em` works on ``x_td = y_td - phi_d y_{t-1,d}`` (:func:`lagged`) and updates ``phi`` by
:func:`phi_step` between its E and M steps (ECM, Meng & Rubin 1993).

With ``Design.lag_stage`` (round 16) the coefficient is the stage's own, ``phi_kd`` (Hamilton
1989's MS-AR with switching persistence): :func:`stage_loglik` is the emission and
:func:`stage_step` its exact M step (per stage and observable, the weighted least squares of
``y_td`` on ``(1, y_{t-1,d})`` with weights ``gamma_tk`` on the days where both are observed).
"""

from __future__ import annotations

import numpy as np
from stressflow.models.emissions import emission_loglik, masked_observations

__all__ = ["lagged", "level", "phi_step", "stage_loglik", "stage_step"]


def _previous(y):
    """``y`` shifted one day down: row t holds ``y_{t-1}`` (NaN on the first day)."""
    return np.vstack([np.full((1, y.shape[1]), np.nan), y[:-1]])


def lagged(y: np.ndarray, phi: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``x_td = y_td - phi_d y_{t-1,d}`` on the columns ``cols`` (bool, D), NaN where
    ``y_{t-1,d}`` is missing (and on the first day); other columns unchanged."""
    x = np.array(y, dtype=np.float64, copy=True)
    x[:, cols] = y[:, cols] - phi[cols] * _previous(y)[:, cols]
    return x


def phi_step(gamma, y, sigma, cols):
    """ECM step for the shared AR coefficients: for each lagged column, the weighted least
    squares ``phi`` with the stage intercepts profiled out, weights ``gamma_tk / sigma_kd^2``
    on the days where ``y_td`` and ``y_{t-1,d}`` are both observed."""
    phi = np.zeros(y.shape[1])
    prev = _previous(y)
    for d in np.flatnonzero(cols):
        ok = np.isfinite(y[:, d]) & np.isfinite(prev[:, d])
        w = gamma[ok] / sigma[None, :, d] ** 2  # (n, K)
        yy, zz = y[ok, d], prev[ok, d]
        W, Sy, Sz = w.sum(axis=0), w.T @ yy, w.T @ zz
        W = np.maximum(W, 1e-12)
        num = float((w.T @ (yy * zz) - Sy * Sz / W).sum())
        den = float((w.T @ (zz * zz) - Sz * Sz / W).sum())
        phi[d] = np.clip(num / den, -0.99, 0.99) if den > 0 else 0.0
    return phi


def level(mu, phi):
    """Each stage's long-run level ``mu / (1 - phi)`` (``mu`` itself where phi is 0); ``phi``
    shared (D,) or the stages' own (K, D)."""
    if phi is None:
        return mu
    return mu / (1.0 - (phi if phi.ndim == 2 else phi[None, :]))


def stage_loglik(y, mu, sigma, phi, cols):
    """``log p(y_t | y_{t-1}, stage_t = k)``, shape (T, K): Gaussian, diagonal, the columns
    ``cols`` (bool, D) centred on ``mu_kd + phi_kd y_{t-1,d}`` (missing where ``y_{t-1,d}``
    is), the others on ``mu_kd``; a missing value contributes 0."""
    out = np.empty((y.shape[0], mu.shape[0]))
    for k in range(mu.shape[0]):
        x0, mask = masked_observations(lagged(y, phi[k], cols))
        out[:, k] = emission_loglik(x0, mask, mu[k:k + 1], sigma[k:k + 1])[:, 0]
    return out


def stage_step(gamma, y, mu, sigma, cols, floor, zero=()):
    """M step of the stage-specific AR(1) columns: returns ``mu, sigma, phi`` (K, D) with the
    ``cols`` entries replaced by each stage's weighted least squares (``phi`` clipped to
    [-0.99, 0.99], the intercept then refitted given it; sd floored at ``floor``); the stages
    in ``zero`` keep ``phi = 0`` (their days drawn independently given the stage), so their
    entries are the weighted mean and sd of the days where the lagged value is observed."""
    mu, sigma = mu.copy(), sigma.copy()
    phi = np.zeros_like(mu)
    prev = _previous(y)
    for d in np.flatnonzero(cols):
        ok = np.isfinite(y[:, d]) & np.isfinite(prev[:, d])
        yy, zz = y[ok, d], prev[ok, d]
        for k in range(mu.shape[0]):
            w = gamma[ok, k]
            W = max(float(w.sum()), 1e-12)
            my, mz = float(w @ yy) / W, float(w @ zz) / W
            szz = float(w @ (zz - mz) ** 2)
            b = float(w @ ((zz - mz) * (yy - my))) / szz if szz > 1e-12 else 0.0
            b = 0.0 if k in zero else float(np.clip(b, -0.99, 0.99))
            a = my - b * mz
            resid = yy - a - b * zz
            phi[k, d], mu[k, d] = b, a
            sigma[k, d] = np.sqrt(max(float(w @ resid**2) / W, floor**2))
    return mu, sigma, phi
