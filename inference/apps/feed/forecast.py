"""h-step-ahead stage probabilities and first passage from a fit's filter state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.apps.feed.columns import COMPULSION_STAGE, INTERVAL, require_feed
from stressflow.models import dims
from stressflow.models.evaluate import evaluate_transitions
from stressflow.models.messages import require_int, shown

__all__ = ["forecast"]


def forecast(
    fit: xr.DataTree,
    horizon: int,
    *,
    target: str = COMPULSION_STAGE,
    quantiles: tuple[float, ...] = INTERVAL,
    covariate_path=None,
) -> pd.DataFrame:
    """h-step-ahead stage probabilities and the probability of reaching a stage within h days.

    With the per-draw filter state ``a_s = Pr(stage_T = . | y_1..y_T, theta_s)`` at the feed's
    last day T and transition matrix ``P_s`` (for a covariate-driven model, ``P_{s,h}`` the move
    into day T+h, evaluated at the covariates of day T+h-1 and the products below taken in
    order):

    - ``Pr(stage_{T+h} = k | y_1..y_T, theta_s) = (a_s P_s^h)[k]``;
    - ``Pr(stage_{T+j} = target for some j = 1..h | y_1..y_T, theta_s) = (a_s P_s Q_s^{h-1})
      [target]``, where ``Q_s`` is ``P_s`` with ``target`` made absorbing (its row replaced by
      the unit vector): exact first passage, non-decreasing in h. Being in ``target`` at T
      does not count; being there at T+1 does.

    Both are averaged over the posterior draws (``Pr(. | y_1..y_T)``) and summarised by their
    quantiles across draws.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit or updated fit (schema 2).
    horizon : int
        H >= 1, in trading days.
    target : str
        Stage of the first-passage probability (default ``forced_flow``).
    quantiles : tuple of float
        Quantile levels across draws (default 5% and 95%).
    covariate_path : array-like, shape (H - 1, C), optional
        Covariate-driven models only: the standardised covariates (the fit's transform, columns
        in ``transition_covariates`` order) of days T+1..T+H-1. Default: held at their value on
        day T (the last stored day).

    Returns
    -------
    pandas.DataFrame, shape (H, K (1 + Q) + 1 + Q)
        Index ``horizon`` (h = 1..H). Columns: for each of the fit's K stages k, ``k`` (the
        posterior mean of ``Pr(stage_{T+h} = k | y_1..y_T)``; the K sum to 1) and ``k_qNN``
        (quantiles); ``p_enter_<target>`` and its ``_qNN`` quantiles. ``attrs["origin"]`` is
        the date T.
    """
    horizon = require_int("horizon", horizon, 1)
    q = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
    valid = np.isfinite(q).all() and ((q >= 0) & (q <= 1)).all()
    names = [f"q{round(100 * x):02d}" for x in q] if valid else []
    if not valid or len(set(names)) < q.size:
        raise ValueError(f"quantiles must be distinct probabilities in [0, 1] (to the "
                         f"percent), got {shown(tuple(q.tolist()))}")
    require_feed(fit)
    spec = schema.read_spec(fit)
    if target not in spec.stage_names:
        raise ValueError(f"target must be one of {spec.stage_names}, got {target!r}")
    params, _ = schema.posterior_params(fit["posterior"], spec)
    state, origin = schema.filter_state(fit)
    trans = np.exp(_step_log_trans(fit, spec, params, horizon, covariate_path))
    k_t = spec.stage_names.index(target)
    absorbing = trans.copy()
    absorbing[..., k_t, :] = 0.0
    absorbing[..., k_t, k_t] = 1.0
    n_draws, n_stages = state.shape
    marg = np.empty((n_draws, horizon, n_stages))
    hit = np.empty((n_draws, horizon))
    v = state
    w = None
    for h in range(horizon):
        v = np.einsum("si,sij->sj", v, trans[:, h])
        w = v.copy() if h == 0 else np.einsum("si,sij->sj", w, absorbing[:, h])
        marg[:, h] = v
        hit[:, h] = w[:, k_t]
    cols: dict[str, np.ndarray] = {}
    mq = np.quantile(marg, q, axis=0)
    for j, k in enumerate(spec.stage_names):
        cols[k] = marg[:, :, j].mean(axis=0)
        for i, n in enumerate(names):
            cols[f"{k}_{n}"] = mq[i, :, j]
    hq = np.quantile(hit, q, axis=0)
    cols[f"p_enter_{target}"] = hit.mean(axis=0)
    for i, n in enumerate(names):
        cols[f"p_enter_{target}_{n}"] = hq[i]
    out = pd.DataFrame(cols, index=pd.RangeIndex(1, horizon + 1, name=dims.HORIZON))
    out.attrs["origin"] = str(origin.date())
    return out




def _step_log_trans(fit, spec, params, horizon: int, covariate_path) -> np.ndarray:
    """``log P`` of the moves into days T+1..T+H per draw, shape (S, H, K, K)."""
    if not spec.time_varying:
        if covariate_path is not None:
            raise ValueError("covariate_path applies to covariate-driven transition models only")
        log_trans = evaluate_transitions(spec, params)
        return np.broadcast_to(log_trans[:, None], (log_trans.shape[0], horizon,
                                                    *log_trans.shape[1:]))
    obs = fit["observed_data"]
    if "covariates" not in obs:
        raise ValueError("this fit stores no observed_data/covariates, which its time-varying "
                         "transition model needs to forecast")
    z_last = obs["covariates"].transpose(dims.TIME, dims.COVARIATE).values[-1]
    n_cov = len(spec.transition_covariates)
    if covariate_path is None:
        path = np.repeat(z_last[None], horizon - 1, axis=0)
    else:
        path = np.asarray(covariate_path, dtype=np.float64)
        if path.shape != (horizon - 1, n_cov) or not np.isfinite(path).all():
            raise ValueError(f"covariate_path must be a finite (H - 1, C) = {(horizon - 1, n_cov)} "
                             f"array of standardised covariates, got shape {path.shape}")
    # row m drives the move into day T+m+1; the last row only pads to H moves
    z = np.vstack([z_last[None], path, z_last[None]])
    return evaluate_transitions(spec, params, z)
