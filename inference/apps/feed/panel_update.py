"""Extend a panel fit's filtered probabilities to new days without refitting
(:func:`update_panel`).

The panel's observables are recomputed from the assets' series over the fit's window and the
new days (:func:`stressflow.data.panel.prepare_panel`; every observable at t uses rows <= t),
the stored days are checked to be the same series (:func:`check_panel_seam`), and the new days
are standardised with the fit's own centre and scale, so nothing about the new days enters the
transform. For every posterior draw the forward filter over joint states continues from
``Pr(J_T = J | y_1..y_T, theta_s)`` through the new days
(:func:`stressflow.inference.postprocess.stages.filter_forward`), exactly as filtering the whole
series from the start with the same draws would give.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.data import DataError
from stressflow.inference import schema
from stressflow.inference.apps.feed.seam import differing
from stressflow.inference.apps.feed.update import extend_along_time
from stressflow.inference.apps.migration import panel_spec
from stressflow.inference.fitting.assemble import data_hash, package_version
from stressflow.inference.fitting.panel_fit import (
    feed_state_dataset,
    panel_params,
    panel_stage_probabilities,
)
from stressflow.inference.postprocess.stages import filter_forward
from stressflow.models import dims
from stressflow.models.panel.evaluate import asset_marginals, evaluate, panel_data

__all__ = ["update_panel", "check_panel_seam", "panel_standardisation"]

# Relative tolerance of the seam check: the stored raw observables against the recomputed ones.
_SEAM_RTOL = 1e-9


def panel_standardisation(fit: xr.DataTree) -> tuple[pd.Series, pd.Series]:
    """``(center, scale)`` by channel with ``features = (raw_features - center) / scale``: the
    stored ``observed_data/center`` and ``scale``, or (fits written before they were stored)
    the exact affine map between the stored raw and standardised values of each channel."""
    od = fit["observed_data"]
    channels = [str(c) for c in od[dims.CHANNEL].values]
    if "center" in od and "scale" in od:
        return (pd.Series(od["center"].values, index=channels),
                pd.Series(od["scale"].values, index=channels))
    raw = od["raw_features"].transpose(dims.TIME, dims.CHANNEL).values
    z = od["features"].transpose(dims.TIME, dims.CHANNEL).values
    center, scale = np.empty(len(channels)), np.empty(len(channels))
    for c in range(len(channels)):
        ok = np.isfinite(raw[:, c]) & np.isfinite(z[:, c])
        lo, hi = np.argmin(np.where(ok, z[:, c], np.inf)), np.argmax(np.where(ok, z[:, c], -np.inf))
        scale[c] = (raw[hi, c] - raw[lo, c]) / (z[hi, c] - z[lo, c])
        center[c] = raw[hi, c] - scale[c] * z[hi, c]
    return pd.Series(center, index=channels), pd.Series(scale, index=channels)


def check_panel_seam(stored_raw: pd.DataFrame, new_raw: pd.DataFrame) -> None:
    """Raise :class:`DataError` unless the recomputed raw observables ``new_raw`` repeat the
    fit's ``stored_raw`` on every stored day and channel (same calendar, same values to a
    relative 1e-9, missing where the fit had them missing): the new data must continue the
    fitted series, not replace them."""
    absent = stored_raw.index.difference(new_raw.index)
    if len(absent):
        raise DataError(f"the new data lack {len(absent)} of the fit's days (first "
                        f"{absent[0].date()}): they do not continue the fitted series")
    old = stored_raw.to_numpy(dtype=np.float64)
    new = new_raw.loc[stored_raw.index, list(stored_raw.columns)].to_numpy(dtype=np.float64)
    diff = differing(old, new, _SEAM_RTOL, atol=1e-12)
    if diff.any():
        t, c = (int(i) for i in np.argwhere(diff)[0])
        raise DataError(
            f"the new data do not continue the fitted series: {stored_raw.columns[c]} on "
            f"{stored_raw.index[t].date()} is {old[t, c]:.6g} in the fit and {new[t, c]:.6g} "
            f"recomputed from the new data ({int(diff.sum())} value(s) differ)")


def _last_state(fit: xr.DataTree, spec, params: dict) -> np.ndarray:
    """``Pr(J_T = J | y_1..y_T, theta_s)`` per draw (S, J): stored by the fit or an earlier
    update (``feed_state/filtered_last``), else (a fit written before it was stored) from the
    fit's post-processing rerun over the stored days."""
    if "feed_state" in fit.children:
        state = fit["feed_state"]["filtered_last"]
        return state.values.reshape(-1, state.shape[-1])
    features = fit["observed_data"]["features"].transpose(dims.TIME, dims.CHANNEL).values
    return panel_stage_probabilities(spec, params, panel_data(spec, features))["filtered_last"]


def update_panel(fit: xr.DataTree, assets: str | Mapping | None = None, *,
                 end=None) -> xr.DataTree:
    """Extend a panel fit's filtered probabilities to new days without refitting.

    Parameters
    ----------
    fit : xarray.DataTree
        A panel fit (:func:`stressflow.inference.fitting.panel_fit.fit_panel`) or an earlier
        update of one. Not modified.
    assets : str or mapping, optional
        What :func:`stressflow.data.panel.prepare_panel` takes (a bundled panel name or
        ``{asset: AssetSource}``), covering the fit's assets over its window and the new days.
        Default: the fit's ``source`` attribute when it names a bundled panel.
    end : date-like, optional
        Last new day (default: the end of the data).

    Returns
    -------
    xarray.DataTree
        The fit with its ``stages`` extended along ``time``: ``filtered`` (time, asset, stage)
        ``= Pr(s_{a,t} = k | y_1..y_t)`` (posterior mean; y_t all assets' observables),
        ``filtered_quantile`` and ``filtered_margin_or_worse_quantile`` across draws,
        ``observed`` and ``in_fit_window`` (False on the new days); the smoothed and joint
        variables are NaN on the new days (an update does not smooth). ``observed_data`` gains
        the new days' observables, ``feed_state/filtered_last`` (chain, draw, joint_state) holds
        ``Pr(J_T = J | y_1..y_T, theta)`` for the next update, and the root attributes
        ``feed_end``, ``feed_updates`` and ``feed_last_update`` (JSON) say what was added.
    """
    from stressflow.data.panel import PANELS, prepare_panel

    t0 = time.perf_counter()
    if not schema.is_panel(fit):
        raise ValueError("update_panel needs a panel fit; update a one-asset fit with update()")
    spec = panel_spec(fit)
    source = fit.attrs.get("source") if assets is None else assets
    if isinstance(source, str):
        if source not in PANELS:
            raise ValueError(f"{source!r} is not a bundled panel ({sorted(PANELS)}): pass the "
                             "assets' series")
        source = PANELS[source]
    if not isinstance(source, Mapping):
        raise ValueError("pass the assets' series: a bundled panel name or {asset: AssetSource}")
    missing = [a for a in spec.assets if a not in source]
    if missing:
        raise ValueError(f"the new data lack the fit's asset(s) {missing}")
    od = fit["observed_data"].to_dataset()
    stored_raw = od["raw_features"].transpose(dims.TIME, dims.CHANNEL).to_pandas()
    last_day = stored_raw.index[-1]
    panel = prepare_panel({a: source[a] for a in spec.assets},
                          start=fit.attrs["data_start"], end=end)
    raw = panel.raw[list(spec.channels)]
    check_panel_seam(stored_raw, raw)
    new_raw = raw.loc[raw.index > last_day]
    if new_raw.empty:
        raise ValueError(f"no new days after the fit's last day {last_day.date()}")
    center, scale = panel_standardisation(fit)
    new_features = (new_raw - center) / scale
    new_index = pd.DatetimeIndex(new_features.index, name=dims.TIME)

    post = fit["posterior"].to_dataset()
    params = panel_params(post, spec)
    n_chains, n_draws = post.sizes[dims.CHAIN], post.sizes[dims.DRAW]
    state = _last_state(fit, spec, params)
    new_data = panel_data(spec, new_features)

    def terms(lo, hi):
        _, log_trans, log_lik = evaluate(spec, {k: v[lo:hi] for k, v in params.items()},
                                         new_data)
        return log_trans, log_lik

    digits = spec.joint_digits()
    names = list(spec.stage_names)
    groups = {f"{a}|{k}": np.flatnonzero(digits[:, i] == j)
              for i, a in enumerate(spec.assets) for j, k in enumerate(names)}
    for group, idx in schema.stage_group_indices(names).items():
        for i, a in enumerate(spec.assets):
            groups[f"{a}|{group}"] = np.flatnonzero(np.isin(digits[:, i], idx))
    st = fit["stages"].to_dataset()
    levels = tuple(float(q) for q in st[dims.QUANTILE].values)
    res = filter_forward(terms, n_chains * n_draws, state, quantiles=levels,
                         filtered_groups=groups)

    n_new = len(new_index)
    tas = (dims.TIME, dims.ASSET, dims.STAGE)
    observed = np.stack([np.isfinite(new_features[panel.asset_channels(a)].to_numpy()).sum(1)
                         for a in spec.assets], axis=1)
    if "in_fit_window" not in st:
        st["in_fit_window"] = (dims.TIME, np.ones(st.sizes[dims.TIME], dtype=bool))
    computed = {
        "filtered": (tas, asset_marginals(spec, res.filtered_mean)),
        "filtered_quantile": ((dims.QUANTILE, *tas), np.stack(  # (Q, T, A, K)
            [np.stack([res.filtered_group_q[f"{a}|{k}"] for k in names], axis=-1)
             for a in spec.assets], axis=-2)),
        "observed": ((dims.TIME, dims.ASSET), observed.astype(np.int8)),
        "in_fit_window": ((dims.TIME,), np.zeros(n_new, dtype=bool)),
    }
    for group in schema.stage_group_indices(names):
        q = np.stack([res.filtered_group_q[f"{a}|{group}"] for a in spec.assets], axis=-1)
        computed[f"filtered_{group}_quantile"] = ((dims.QUANTILE, dims.TIME, dims.ASSET), q)
    new_stages = extend_along_time(st, new_index, computed)
    tc = (dims.TIME, dims.CHANNEL)
    levels_new = panel.levels.loc[new_index, list(spec.assets)].to_numpy(dtype=np.float64)
    new_obs = extend_along_time(od, new_index, {
        "features": (tc, new_features.to_numpy(dtype=np.float64)),
        "raw_features": (tc, new_raw.to_numpy(dtype=np.float64)),
        "level": ((dims.TIME, dims.ASSET), levels_new)})
    state_ds = feed_state_dataset(spec, post, res.filtered_last, new_index[-1])
    groups_out = {name: node.to_dataset().copy(deep=False) for name, node in fit.children.items()}
    groups_out.update({"stages": new_stages, "observed_data": new_obs, "feed_state": state_ds})
    attrs = dict(fit.attrs)
    attrs.update({
        "feed_end": str(new_index[-1].date()),
        "feed_n_days": int(new_stages.sizes[dims.TIME]),
        "feed_updates": int(attrs.get("feed_updates", 0)) + 1,
        "feed_last_update": json.dumps({
            "first": str(new_index[0].date()), "last": str(new_index[-1].date()),
            "n_days": n_new, "data_hash": data_hash(new_features),
            "stressflow_version": package_version(),
            "seconds": round(time.perf_counter() - t0, 6)}),
    })
    return xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **groups_out})
