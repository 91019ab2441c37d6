"""Figures of a fit: overview with episodes, observables by stage, transition matrix.

matplotlib is an optional dependency (``pip install stressflow[plot]``), imported inside the
functions. The figures are built as :class:`matplotlib.figure.Figure` objects without
``pyplot``, so they need no GUI backend and leave pyplot's global state alone; save them with
``fig.savefig(path)`` or :func:`save_figure`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.models import dims

__all__ = [
    "STAGE_COLORS",
    "plot_overview",
    "plot_observables",
    "plot_transitions",
    "save_figure",
]

#: Colour of each stage, in :data:`stressflow.models.dims.STAGES` order.
STAGE_COLORS = ("#4c9a5b", "#e2c044", "#e07b39", "#b2182b", "#6a8fc7")
#: Colours of the stages beyond the named five (``stage_5``, ``stage_6``, ..., cycled).
EXTRA_STAGE_COLORS = ("#8c6bb1", "#7f7f7f", "#41b6c4", "#a6761d")


def stage_color(stage: str) -> str:
    """The colour of a stage by name (the same colour in every model, whatever its K)."""
    if stage in dims.STAGES:
        return STAGE_COLORS[dims.STAGES.index(stage)]
    index = int(stage.removeprefix(dims.EXTRA_STAGE_PREFIX)) - len(dims.STAGES)
    return EXTRA_STAGE_COLORS[index % len(EXTRA_STAGE_COLORS)]

_KINDS = ("overview", "observables", "transitions")


def _figure(*args, **kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plots need matplotlib: pip install 'stressflow[plot]' (or matplotlib>=3.8)"
        ) from None
    return Figure(*args, **kwargs)


def _check_fit(fit):
    for group in ("stages", "observed_data"):
        if not isinstance(fit, xr.DataTree) or group not in fit.children:
            raise ValueError(f"expected a stressflow fit with a '{group}' group")


def plot_overview(fit: xr.DataTree, *, episode_table: pd.DataFrame | None = None,
                  figsize=(12, 7), **episode_options):
    """Price on top, stacked smoothed stage probabilities below, episodes shaded.

    The lower panel stacks ``Pr(stage_t = k | y_1..y_T)`` (posterior mean, sums to 1 each
    day). Each episode of ``episode_table`` (default ``episodes(fit, **episode_options)``)
    is shaded on both panels (red: selloff, blue: rally) and annotated with its
    ``p_compulsion = Pr(>= min_share of the episode's days in forced_flow | y_1..y_T)``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_fit(fit)
    if episode_table is None:
        from stressflow.inference.apps.episodes import episodes

        episode_table = episodes(fit, **episode_options)
    close = fit["observed_data"]["close"].to_series()
    smoothed = fit["stages"]["smoothed"].transpose(dims.TIME, dims.STAGE).to_pandas()
    fig = _figure(figsize=figsize, layout="constrained")
    ax_p, ax_s = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    ax_p.plot(close.index, close.to_numpy(), color="black", lw=0.8)
    ax_p.set_yscale("log")
    ax_p.set_ylabel("close (log scale)")
    src = fit.attrs.get("source", "") or "fit"
    ax_p.set_title(f"{src} {fit.attrs.get('start', '')} .. {fit.attrs.get('end', '')}: "
                   "episodes annotated with p_compulsion")
    ax_s.stackplot(smoothed.index, smoothed.to_numpy().T, labels=list(smoothed.columns),
                   colors=[stage_color(str(k)) for k in smoothed.columns], lw=0)
    ax_s.set_ylim(0, 1)
    ax_s.set_ylabel("Pr(stage_t = k | y_1..y_T)")
    ax_s.legend(loc="upper left", fontsize=7, ncols=4, framealpha=0.8)
    top = float(close.max())
    for _, ep in episode_table.iterrows():
        color = "#d6604d" if ep["direction"] == "selloff" else "#4393c3"
        ax_p.axvspan(pd.Timestamp(ep["start"]), pd.Timestamp(ep["end"]), color=color,
                     alpha=0.18, lw=0)
        for edge in (ep["start"], ep["end"]):
            ax_s.axvline(pd.Timestamp(edge), color="black", lw=0.4, alpha=0.5)
        p = ep.get("p_compulsion", np.nan)
        if np.isfinite(p):
            ax_p.annotate(f"{p:.2f}", (pd.Timestamp(ep["start"]), top), fontsize=6,
                          rotation=90, va="top", ha="left", color=color)
    return fig


def plot_observables(fit: xr.DataTree, *, bins: int = 40, figsize=(10, 7)):
    """Per-stage distributions of each observable (standardised units).

    For stage ``k`` and feature ``d`` the histogram has weights ``Pr(stage_t = k | y_1..y_T)``
    over the days where ``d`` is observed, normalised to a density: the posterior-weighted
    distribution of the observable in that stage. The dashed line is the posterior mean of the
    stage mean ``mu[k, d]``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_fit(fit)
    feats = fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE)
    weights = fit["stages"]["smoothed"].transpose(dims.TIME, dims.STAGE).values
    stage_names = [str(k) for k in fit["stages"][dims.STAGE].values]
    names = [str(f) for f in feats[dims.FEATURE].values]
    mu = None
    if "posterior" in fit.children and "mu" in fit["posterior"]:
        mu = fit["posterior"]["mu"].mean((dims.CHAIN, dims.DRAW))
    ncols = 2
    nrows = int(np.ceil(len(names) / ncols))
    fig = _figure(figsize=figsize, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, name in zip(axes, names, strict=False):
        x = feats.sel({dims.FEATURE: name}).values
        ok = np.isfinite(x)
        edges = np.histogram_bin_edges(x[ok], bins=bins)
        for k, stage in enumerate(stage_names):
            w = weights[ok, k]
            if w.sum() <= 0:
                continue
            ax.hist(x[ok], bins=edges, weights=w, density=True, histtype="step", lw=1.4,
                    color=stage_color(stage), label=stage)
            if mu is not None and name in [str(f) for f in mu[dims.FEATURE].values]:
                ax.axvline(float(mu.sel({dims.STAGE: stage, dims.FEATURE: name})),
                           color=stage_color(stage), ls="--", lw=0.8)
        ax.set_title(name)
        ax.set_xlabel("standardised value")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle("observables by stage, weighted by Pr(stage_t = k | y_1..y_T)")
    return fig


def plot_transitions(fit: xr.DataTree, *, figsize=(6.5, 5.5)):
    """Heatmap of ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``: colour and first line =
    posterior mean, second line = 5%-95% interval across posterior draws.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if "posterior" not in fit.children or "P" not in fit["posterior"]:
        raise ValueError("expected a stressflow fit with posterior.P")
    trans = fit["posterior"]["P"].transpose(dims.CHAIN, dims.DRAW, dims.STAGE_FROM,
                                            dims.STAGE_TO).values
    flat = trans.reshape(-1, *trans.shape[2:])
    mean = flat.mean(axis=0)
    q05, q95 = np.quantile(flat, [0.05, 0.95], axis=0)
    fig = _figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(mean, cmap="Blues", vmin=0, vmax=1)
    k = mean.shape[0]
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{mean[i, j]:.3f}\n[{q05[i, j]:.3f}, {q95[i, j]:.3f}]",
                    ha="center", va="center", fontsize=7,
                    color="white" if mean[i, j] > 0.6 else "black")
    labels = [str(x) for x in fit["posterior"][dims.STAGE_FROM].values][:k]
    ax.set_xticks(range(k), labels, rotation=30, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel(f"{dims.STAGE_TO} (stage_t)")
    ax.set_ylabel(f"{dims.STAGE_FROM} (stage_t-1)")
    ax.set_title("P[i, j] = Pr(stage_t = j | stage_t-1 = i): mean [5%, 95%]")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write a figure to ``path`` (format from the suffix, e.g. ``.png``; PNG without one),
    atomically: the old file or the whole new one (:func:`~stressflow.inference.integrity
    .atomic_write`)."""
    from stressflow.inference.integrity import atomic_write

    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower() or "png")
    return path
