"""The one evaluator of the panel model: ``(log_init, log_trans, log_lik)`` over joint states.

Formulas in :mod:`stressflow.models.panel.spec`. Like :func:`stressflow.models.evaluate
.evaluate`, it serves the PyMC graph (``xp=pytensor.tensor``) and the NumPy post-processing of
posterior draws (``xp=numpy``, parameters with leading draw dimensions); the kernels see only
its outputs:

- ``log_init[J] = -log(n_joint)``;
- ``log_trans[..., J, J'] = log Pr(J_t = J' | J_{t-1} = J)``;
- ``log_lik[..., T, J] = log p(y_t | J_t = J)``.

Parameters: ``mu`` (..., stage, channel), ``sigma`` (..., stage, channel), ``P`` (..., asset,
stage_from, stage_to) (``P`` (..., stage_from, stage_to) with a shared stage) and, with
``coupling="spillover"``, ``spillover`` (..., asset, asset_from), zero on the diagonal.
"""

from __future__ import annotations

import numpy as np
from stressflow.models import dims
from stressflow.models.emissions import gaussian_design, gaussian_loglik, masked_observations
from stressflow.models.panel.spec import PanelSpec

__all__ = ["param_names", "param_dims", "panel_data", "evaluate", "asset_marginals",
           "check_params"]


def param_names(spec: PanelSpec) -> tuple[str, ...]:
    """Posterior variables the evaluator reads."""
    return ("mu", "sigma", "P") + (("spillover",) if spec.coupling == "spillover" else ())


def param_dims(spec: PanelSpec) -> dict[str, tuple[str, ...]]:
    """Labelled dims of each parameter (without ``chain, draw``)."""
    pair = (dims.STAGE, dims.CHANNEL)
    trans = ((dims.STAGE_FROM, dims.STAGE_TO) if spec.coupling == "shared"
             else (dims.ASSET, dims.STAGE_FROM, dims.STAGE_TO))
    out = {"mu": pair, "sigma": pair, "P": trans}
    if spec.coupling == "spillover":
        out["spillover"] = (dims.ASSET, dims.ASSET_FROM)
    return out


def panel_data(spec: PanelSpec, features) -> dict[str, np.ndarray]:
    """Data arrays by container name: ``design`` (T, 3C) and ``offset`` (T,) of the Gaussian
    emission (:func:`stressflow.models.emissions.gaussian_design`), from the (T, C)
    standardised channels in ``spec.channels`` order (NaN = missing)."""
    y = np.asarray(features, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != len(spec.channels):
        raise ValueError(f"features must have shape (T, {len(spec.channels)}), got {y.shape}")
    design, offset = gaussian_design(*masked_observations(y))
    return {"design": design, "offset": offset}


def check_params(spec: PanelSpec, params: dict) -> None:
    """Raise ``ValueError`` naming a missing, misshapen or invalid NumPy parameter."""
    k, c, a = spec.n_stages, len(spec.channels), spec.n_assets
    shapes = {"mu": (k, c), "sigma": (k, c),
              "P": (k, k) if spec.coupling == "shared" else (a, k, k), "spillover": (a, a)}
    for name in param_names(spec):
        if name not in params:
            raise ValueError(f"the panel model needs the parameter {name!r}")
        value = np.asarray(params[name])
        if value.shape[value.ndim - len(shapes[name]):] != shapes[name]:
            raise ValueError(f"{name} must end in shape {shapes[name]}, got {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"{name} has non-finite values")
    if (np.asarray(params["sigma"]) <= 0).any():
        raise ValueError("sigma must be > 0")
    rows = np.asarray(params["P"]).sum(axis=-1)
    if not np.allclose(rows, 1.0, atol=1e-8) or (np.asarray(params["P"]) < 0).any():
        raise ValueError("every row of P must be a probability vector")


def _logsumexp_last(x, xp):
    m = xp.max(x, axis=-1, keepdims=True)
    return m + xp.log(xp.sum(xp.exp(x - m), axis=-1, keepdims=True))


def evaluate(spec: PanelSpec, params: dict, data: dict, *, xp=np):
    """``(log_init, log_trans, log_lik)`` of the panel model over its joint states.

    Returns
    -------
    log_init : (n_joint,)
        ``log Pr(J_1 = J)``, uniform.
    log_trans : (..., n_joint, n_joint)
        ``log Pr(J_t = J' | J_{t-1} = J)``.
    log_lik : (..., T, n_joint)
        ``log p(y_t | J_t = J)``, missing channels skipped.
    """
    if xp is np:
        check_params(spec, params)
    digits = spec.joint_digits()
    n_joint = spec.n_joint
    stage_of = digits[:, spec.channel_asset_index]  # (J, C): each channel's asset's stage in J
    cols = np.arange(len(spec.channels))[None, :]
    mu, sigma = params["mu"], params["sigma"]
    log_lik = gaussian_loglik(data["design"], data["offset"], mu[..., stage_of, cols],
                              sigma[..., stage_of, cols], xp=xp)
    log_init = np.full(n_joint, -np.log(n_joint))
    if xp is not np:
        log_init = xp.constant(log_init)
    log_p = xp.log(params["P"])
    if spec.coupling == "shared":
        return log_init, log_p, log_lik
    a_idx = np.arange(spec.n_assets)[None, :]
    base = log_p[..., a_idx, digits, :]  # (..., J, A, K): log P[a, s_a(J), j]
    if spec.coupling == "spillover":
        top = (digits == spec.n_stages - 1).astype(np.float64)  # (J, A)
        tilt = xp.matmul(top, xp.swapaxes(params["spillover"], -1, -2))  # (..., J, A)
        onehot = np.zeros(spec.n_stages)
        onehot[-1] = 1.0
        base = base + tilt[..., None] * onehot
    norm = base - _logsumexp_last(base, xp)
    log_trans = norm[..., a_idx, digits].sum(axis=-1)  # (..., J, J', A) summed over assets
    return log_init, log_trans, log_lik


def asset_marginals(spec: PanelSpec, joint_probs: np.ndarray) -> np.ndarray:
    """Per-asset stage probabilities from joint-state probabilities.

    ``joint_probs[..., J]`` (any probability over joint states, e.g. ``Pr(J_t = J | y_1..y_T)``)
    becomes ``out[..., a, k] = sum_{J: s_a(J) = k} joint_probs[..., J]``, shape (..., A, K).
    """
    digits = spec.joint_digits()
    onehot = (digits[:, :, None] == np.arange(spec.n_stages)).astype(np.float64)  # (J, A, K)
    return np.einsum("...j,jak->...ak", joint_probs, onehot)
