"""The autoregressive emission of the screen's ``Design.lag`` observables (round 14).

``y_td = mu_kd + phi_d y_{t-1,d} + e_td``, ``e_td ~ N(0, sigma_kd^2)``: one ``phi_d`` per
observable shared by the stages (Krolzig's MSI-AR, the stage shifts the intercept). The EM of
:mod:`.em` works on ``x_td = y_td - phi_d y_{t-1,d}`` (:func:`lagged`) and updates ``phi`` by
:func:`phi_step` between its E and M steps (ECM, Meng & Rubin 1993).
"""

from __future__ import annotations

import numpy as np

__all__ = ["lagged", "level", "phi_step"]


def lagged(y: np.ndarray, phi: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``x_td = y_td - phi_d y_{t-1,d}`` on the columns ``cols`` (bool, D), NaN where
    ``y_{t-1,d}`` is missing (and on the first day); other columns unchanged."""
    x = np.array(y, dtype=np.float64, copy=True)
    prev = np.vstack([np.full((1, y.shape[1]), np.nan), y[:-1]])
    x[:, cols] = y[:, cols] - phi[cols] * prev[:, cols]
    return x


def phi_step(gamma, y, sigma, cols):
    """ECM step for the shared AR coefficients: for each lagged column, the weighted least
    squares ``phi`` with the stage intercepts profiled out, weights ``gamma_tk / sigma_kd^2``
    on the days where ``y_td`` and ``y_{t-1,d}`` are both observed."""
    phi = np.zeros(y.shape[1])
    prev = np.vstack([np.full((1, y.shape[1]), np.nan), y[:-1]])
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
    """Each stage's long-run level ``mu / (1 - phi)`` (``mu`` itself where phi is 0)."""
    return mu if phi is None else mu / (1.0 - phi)[None, :]
