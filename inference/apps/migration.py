"""Stress migrating across a panel: lead and lag of the assets' stages, with intervals.

Both quantities are read off whole joint-stage paths drawn from their posterior
(forward-filtering backward-sampling per posterior draw, :func:`stressflow.models.numerics
.kernels.sample_paths`), so they carry the uncertainty of the stages and of the parameters:

- **onset** of asset a in a window: the first day of a's first run of at least ``min_run``
  consecutive days in its top stage (``forced_flow`` with two stages) inside the window;
  **lead of a over b** = onset(b) - onset(a) in trading days (positive: a's stress came first);
- **migration probability** ``Pr(s_b reaches the top stage within h days | s_a entered it on
  day t, y)``: over the sampled paths and the window's days t on which a enters its top stage
  (top on t, not on t-1), the share with b in its top stage on some day of t..t+h; per
  posterior draw, so its quantiles across draws are an interval. Beside it, the base rate: the
  same share over every day t of the window (entry or not).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.data.window import to_timestamp
from stressflow.inference import schema
from stressflow.inference.fitting.panel_fit import panel_params
from stressflow.models import dims
from stressflow.models.numerics import kernels
from stressflow.models.panel.evaluate import evaluate, panel_data
from stressflow.models.panel.spec import PanelSpec

__all__ = ["panel_spec", "sample_asset_paths", "onsets", "lead_table", "migration_table"]


def panel_spec(fit: xr.DataTree) -> PanelSpec:
    """The :class:`PanelSpec` stored with a panel fit."""
    if not schema.is_panel(fit):
        raise ValueError("not a panel fit (root attribute model_kind != 'panel')")
    return PanelSpec.from_dict(json.loads(fit.attrs["panel_spec"]))


def sample_asset_paths(fit: xr.DataTree, *, n_draws: int = 200, paths_per_draw: int = 5,
                       seed: int = 0) -> xr.DataArray:
    """Stage paths of every asset drawn from ``Pr(s_{1..A, 1..T} | y, theta)`` for
    ``n_draws`` evenly spaced posterior draws, ``paths_per_draw`` paths each.

    Returns
    -------
    DataArray of int8, dims (draw, sample, time, asset)
        Stage indices (``fit["stages"].stage`` names them); ``draw`` is the posterior draw's
        index in the chains-stacked order.
    """
    spec = panel_spec(fit)
    params = panel_params(fit["posterior"].to_dataset(), spec)
    total = next(iter(params.values())).shape[0]
    picks = np.unique(np.linspace(0, total - 1, min(total, n_draws)).round().astype(int))
    features = fit["observed_data"]["features"].values
    data = panel_data(spec, features)
    digits = spec.joint_digits()
    rng = np.random.default_rng(seed)
    out = np.empty((len(picks), paths_per_draw, features.shape[0], spec.n_assets), np.int8)
    for i, d in enumerate(picks):
        log_init, log_trans, log_lik = evaluate(spec, {k: v[d] for k, v in params.items()}, data)
        joint = kernels.sample_paths(log_init, log_trans, log_lik, paths_per_draw, rng)
        out[i] = digits[joint]
    time_index = fit["stages"][dims.TIME].values
    return xr.DataArray(out, dims=("draw", dims.SAMPLE, dims.TIME, dims.ASSET),
                        coords={"draw": picks, dims.TIME: time_index,
                                dims.ASSET: list(spec.assets)},
                        attrs={"stages": list(spec.stage_names)})


def _window(paths: xr.DataArray, start, end) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(top, entry, days)`` on the window: ``top[d, s, t, a]`` the asset in its top stage,
    ``entry`` top on t and not on the day before (the day before the window included), and
    the window's dates."""
    times = pd.DatetimeIndex(paths[dims.TIME].values)
    inside = (times >= to_timestamp(start, "start")) & (times <= to_timestamp(end, "end"))
    if not inside.any():
        raise ValueError(f"no day of the fit in {start}..{end}")
    top = paths.values == len(paths.attrs["stages"]) - 1  # (D, S, T, A)
    before = np.concatenate([np.zeros_like(top[:, :, :1]), top[:, :, :-1]], axis=2)
    entry = top & ~before
    return top, entry, np.flatnonzero(inside)


def onsets(paths: xr.DataArray, start, end, *, min_run: int = 5) -> xr.DataArray:
    """Onset of each asset's stress in ``start..end`` per sampled path: the first day of the
    window on which the asset enters its top stage (not in it the day before, which may lie
    before the window) and stays there at least ``min_run`` days; NaN where there is none
    (also when the asset is already in its top stage as the window opens and never re-enters).

    Returns
    -------
    DataArray of float, dims (draw, sample, asset)
        Trading days from the window's first day.
    """
    top, entry, idx = _window(paths, start, end)
    run = np.zeros(top.shape[:2] + top.shape[3:], dtype=np.int64)
    forward = np.zeros(top.shape, dtype=np.int64)  # consecutive top days starting at t
    for t in range(top.shape[2] - 1, -1, -1):
        run = np.where(top[:, :, t], run + 1, 0)
        forward[:, :, t] = run
    ok = entry[:, :, idx] & (forward[:, :, idx] >= min_run)  # (D, S, W, A)
    first = np.where(ok.any(axis=2), ok.argmax(axis=2), np.nan).astype(float)
    return xr.DataArray(first, dims=("draw", dims.SAMPLE, dims.ASSET),
                        coords={"draw": paths["draw"].values,
                                dims.ASSET: paths[dims.ASSET].values})


def lead_table(paths: xr.DataArray, start, end, *, min_run: int = 5,
               interval: float = 0.9) -> pd.DataFrame:
    """Lead of each asset's stress onset over each other's in ``start..end``.

    Returns
    -------
    DataFrame, one row per ordered pair (``leader``, ``follower``)
        ``median_lead_days`` and the ``interval`` quantile bounds ``lo``, ``hi`` of
        onset(follower) - onset(leader) over the sampled paths where both have an onset,
        ``pr_leader_first = Pr(onset(leader) < onset(follower) | both, y) + Pr(onset(leader) =
        onset(follower) | both, y) / 2`` (``both``: both have an onset in the window),
        ``pr_both = Pr(both have an onset in the window | y)``
        (each estimated by the share of sampled joint paths of ``Pr(stage_1..stage_T |
        y_1..y_T)``), and each asset's median onset date.
    """
    first = onsets(paths, start, end, min_run=min_run)
    days = paths[dims.TIME].values[_window(paths, start, end)[2]]
    assets = list(first[dims.ASSET].values)
    flat = first.values.reshape(-1, len(assets))
    rows = []
    tail = (1.0 - interval) / 2.0
    for i, a in enumerate(assets):
        for j, b in enumerate(assets):
            if i == j:
                continue
            both = np.isfinite(flat[:, i]) & np.isfinite(flat[:, j])
            lead = flat[both, j] - flat[both, i]
            row = {"leader": a, "follower": b, "pr_both": both.mean()}
            if both.any():
                row.update(median_lead_days=float(np.median(lead)),
                           lo=float(np.quantile(lead, tail)), hi=float(np.quantile(lead, 1 - tail)),
                           pr_leader_first=float((lead > 0).mean() + 0.5 * (lead == 0).mean()),
                           leader_onset=pd.Timestamp(days[int(np.median(flat[both, i]))]),
                           follower_onset=pd.Timestamp(days[int(np.median(flat[both, j]))]))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["leader", "follower"])


def migration_table(paths: xr.DataArray, start, end, *, horizons=(5, 20),
                    interval: float = 0.9) -> pd.DataFrame:
    """``Pr(s_b reaches the top stage within h days | s_a entered it on day t, y)`` over the
    entries t in ``start..end`` (module docstring), with the base rate beside it.

    Returns
    -------
    DataFrame, one row per (``source``, ``target``, ``horizon``)
        ``median``, ``lo``, ``hi`` across posterior draws (each draw pools its sampled paths),
        ``base_rate`` (median across draws of the share over every day t), ``entries`` (mean
        number of entries of the source per path).
    """
    top_all, entry_all, idx = _window(paths, start, end)
    assets = list(paths[dims.ASSET].values)
    tail = (1.0 - interval) / 2.0
    rows = []
    n_all = top_all.shape[2]
    entry = entry_all[:, :, idx]
    for h in horizons:
        # reach[d, s, t, b]: b in its top stage on some day of t..t+h (the data's last day
        # bounds the look forward)
        reach_all = np.zeros_like(top_all)
        for lag in range(h + 1):
            reach_all[:, :, :n_all - lag] |= top_all[:, :, lag:]
        reach = reach_all[:, :, idx]
        for i, a in enumerate(assets):
            for j, b in enumerate(assets):
                if i == j:
                    continue
                hits = (entry[..., i] & reach[..., j]).sum(axis=(1, 2))
                count = entry[..., i].sum(axis=(1, 2))
                with np.errstate(invalid="ignore", divide="ignore"):
                    per_draw = hits / count
                base = reach[..., j].mean(axis=(1, 2))
                ok = np.isfinite(per_draw)
                rows.append({
                    "source": a, "target": b, "horizon": h,
                    "median": float(np.median(per_draw[ok])) if ok.any() else np.nan,
                    "lo": float(np.quantile(per_draw[ok], tail)) if ok.any() else np.nan,
                    "hi": float(np.quantile(per_draw[ok], 1 - tail)) if ok.any() else np.nan,
                    "base_rate": float(np.median(base)),
                    "entries": float(count.mean() / entry.shape[1]),
                })
    return pd.DataFrame(rows).set_index(["source", "target", "horizon"])
