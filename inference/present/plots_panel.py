"""Figure of a panel fit: stress moving from one market to the next.

One row per asset, on one time axis: the asset's level (grey, right axis) and its posterior
probability of the top stage with a 5%-95% band; with a window, each asset's median stress
onset (:func:`stressflow.inference.apps.migration.onsets`) is marked, so the order in which
the markets entered stress reads from top to bottom. Built without ``pyplot``, as the figures
of :mod:`stressflow.inference.present.plots`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference.present.plots import _figure, stage_color
from stressflow.models import dims

__all__ = ["plot_panel"]

_BAND = (0.05, 0.95)


def _onset_dates(fit, window, paths, min_run, seed):
    from stressflow.inference.apps.migration import onsets, sample_asset_paths

    if paths is None:
        paths = sample_asset_paths(fit, n_draws=100, paths_per_draw=5, seed=seed)
    first = onsets(paths, *window, min_run=min_run)
    times = pd.DatetimeIndex(paths[dims.TIME].values)
    days = times[(times >= pd.Timestamp(window[0])) & (times <= pd.Timestamp(window[1]))]
    out = {}
    for a in first[dims.ASSET].values:
        vals = first.sel({dims.ASSET: a}).values.ravel()
        vals = vals[np.isfinite(vals)]
        if vals.size:
            out[str(a)] = (days[int(np.median(vals))], vals.size / first.sel(
                {dims.ASSET: a}).size)
    return out


def plot_panel(fit: xr.DataTree, *, window=None, kind: str = "smoothed",
               paths: xr.DataArray | None = None, min_run: int = 5, seed: int = 0,
               figsize=None):
    """Per asset: ``Pr(s_{a,t} = top stage | y_1..y_T)`` (``kind="smoothed"``) or ``| y_1..y_t``
    (``kind="filtered"``), posterior mean with the 5%-95% band across draws, and the asset's
    level; ``y`` is every asset's data.

    Parameters
    ----------
    fit : xarray.DataTree
        A panel fit (:func:`stressflow.inference.fitting.panel_fit.fit_panel`).
    window : (start, end), optional
        Limit the time axis to the window and mark each asset's median onset of stress in it
        (first entry into the top stage lasting ``min_run`` days, over FFBS paths; the
        legend gives the share of paths with an onset).
    paths : xarray.DataArray, optional
        :func:`stressflow.inference.apps.migration.sample_asset_paths` of ``fit`` (else drawn
        with ``seed`` when a window is given).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from stressflow.inference.apps.migration import panel_spec

    spec = panel_spec(fit)
    if kind not in ("smoothed", "filtered"):
        raise ValueError(f"kind must be 'smoothed' or 'filtered', got {kind!r}")
    st = fit["stages"]
    top = spec.stage_names[-1]
    times = pd.DatetimeIndex(st[dims.TIME].values)
    inside = np.ones(len(times), dtype=bool)
    if window is not None:
        inside = (times >= pd.Timestamp(window[0])) & (times <= pd.Timestamp(window[1]))
        if not inside.any():
            raise ValueError(f"no day of the fit in {window[0]}..{window[1]}")
    onset = _onset_dates(fit, window, paths, min_run, seed) if window is not None else {}
    levels = np.asarray(st[dims.QUANTILE].values, dtype=np.float64)
    lo, hi = (int(np.flatnonzero(np.isclose(levels, q))[0]) for q in _BAND)
    fig = _figure(figsize=figsize or (12, 1.9 * spec.n_assets + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(spec.n_assets, 1, sharex=True))
    x = times[inside]
    color = stage_color(top)
    after = np.zeros(len(x), dtype=bool)
    if kind == "smoothed" and "in_fit_window" in st:
        after = ~st["in_fit_window"].values.astype(bool)[inside]
    for ax, asset in zip(axes, spec.assets, strict=True):
        one = {dims.ASSET: asset, dims.STAGE: top}
        mean = st[kind].sel(one).values[inside]
        band = st[f"{kind}_quantile"].sel(one).values[:, inside]
        level = fit["observed_data"]["level"].sel({dims.ASSET: asset}).values[inside]
        twin = ax.twinx()
        twin.plot(x, level, color="0.55", lw=0.7)
        twin.set_ylabel("level", fontsize=7, color="0.45")
        ax.fill_between(x, 0, mean, color=color, alpha=0.30, lw=0)
        ax.fill_between(x, band[lo], band[hi], color=color, alpha=0.25, lw=0)
        ax.plot(x, mean, color=color, lw=0.9)
        if after.any():  # days added by update: no smoothed value, the filtered one instead
            filt = st["filtered"].sel(one).values[inside]
            ax.plot(x[after], filt[after], color="black", lw=0.8,
                    label="filtered, days added by update")
            ax.legend(loc="upper left", fontsize=7, framealpha=0.8)
        ax.set_ylim(-0.03, 1.03)
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_ylabel(asset, fontsize=9)
        if asset in onset:
            day, share = onset[asset]
            ax.axvline(day, color="black", lw=1.0, ls="--",
                       label=f"median onset {day:%Y-%m-%d} ({share:.0%} of paths)")
            ax.legend(loc="upper left", fontsize=7, framealpha=0.8)
    bar = "T" if kind == "smoothed" else "t"
    what = f"Pr(s_a,t = {top} | y_1..y_{bar}), all markets' data; 5%-95% band; grey: level"
    span = f"{x[0]:%Y-%m-%d} .. {x[-1]:%Y-%m-%d}"
    axes[0].set_title(f"panel {list(spec.assets)} {span} ({spec.coupling}): {what}",
                      fontsize=9)
    return fig
