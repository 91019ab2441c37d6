"""Posterior predictive checks of a fit (Gelman, Meng & Stern 1996; Gelman et al., BDA3 ch. 6).

:func:`posterior_predictive` draws replicated observables ``y_rep`` from the fitted model under
evenly thinned posterior draws ``theta^(s)``; :func:`ppc_table` compares test quantities
``T(y)`` of the observed series with their replicated distribution and reports the posterior
predictive p-value ``ppp = Pr(T(y_rep) >= T(y) | y)``: near 0 or 1 the model does not
reproduce that feature of the data.

Two kinds of replicate (``paths``):

- ``"transition"``: stage paths drawn forward from the fitted chain itself (``stage_1`` from
  the initial law, then the fitted ``P`` or, with covariate-driven transitions, ``P_t`` on the
  observed covariates), then the observables: ``y_rep ~ p(y | theta)``, the whole model. It
  checks the transition law too: a stage that the smoothed probabilities fill far more often
  than the simulated paths do is one the emissions, not the dynamics, put days in.
- ``"smoothed"``: stage paths drawn from ``Pr(stage_1..stage_T | y_1..y_T, theta)`` (FFBS),
  then the observables: a check of the emission model given the stages the data imply.

Replicates carry the observed missing pattern (NaN where the observed feature is missing), and
every test quantity skips missing entries in both, so they are compared on the same days.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.postprocess.paths import stage_paths
from stressflow.inference.postprocess.stages import quantile_draw_index
from stressflow.models import dims
from stressflow.models.evaluate import evaluate_draws, sample_observables
from stressflow.models.messages import require_int
from stressflow.models.numerics.markov import simulate_chain

__all__ = ["PATHS", "STATISTICS", "posterior_predictive", "ppc_table", "ppc_quantities"]

#: Kinds of replicated stage path (module docstring).
PATHS = ("transition", "smoothed")
#: Test quantities of each observable (:func:`ppc_quantities`).
STATISTICS = ("mean", "sd", "q01", "q99", "acf1", "extreme_run")
GROUP = "posterior_predictive"
_CHUNK = 32


def posterior_predictive(fit: xr.DataTree, *, n_draws: int = 200, paths: str = "transition",
                         seed: int = 0) -> xr.DataTree:
    """The fit with a ``posterior_predictive`` group of replicated observables.

    Parameters
    ----------
    fit : xarray.DataTree
        A one-asset fit (:func:`stressflow.inference.fit`, :func:`~stressflow.inference.load_fit`,
        or an update of one: every stored day is replicated). Not modified.
    n_draws : int
        About this many posterior draws, the same evenly thinned draws in every chain
        (``max(1, n_draws // chains)`` per chain).
    paths : {"transition", "smoothed"}
        How the replicated stage paths are drawn (module docstring).
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same replicates.

    Returns
    -------
    xarray.DataTree
        The fit's groups and a group ``posterior_predictive`` with ``features`` (chain, draw,
        time, feature): ``y_rep`` on the standardised scale of ``observed_data/features``,
        one replicate per kept draw, NaN where the observed feature is missing; and ``stage``
        (chain, draw, time), int8 indices into the ``stages`` attribute, the replicated path.
        ArviZ reads the pair ``posterior_predictive/features`` and ``observed_data/features``
        (e.g. ``arviz_plots.plot_ppc_dist``).

    Raises
    ------
    ValueError
        A panel fit, a fit without observed features, ``paths`` not in :data:`PATHS`, or
        ``n_draws`` / ``seed`` not an integer >= 1 / >= 0.
    """
    n_draws = require_int("n_draws", n_draws, 1)
    seed = require_int("seed", seed, 0)
    if paths not in PATHS:
        raise ValueError(f"paths must be one of {PATHS}, got {paths!r}")
    if schema.is_panel(fit):
        raise ValueError("posterior_predictive is for one-asset fits; a panel fit has no "
                         "replicate generator yet")
    schema.require_fit(fit, needs={"observed_data": ("features",)},
                       purpose="posterior predictive checks")
    spec = schema.read_spec(fit)
    params, (n_chains, n_per_chain) = schema.posterior_params(fit["posterior"], spec)
    keep = quantile_draw_index(n_per_chain, max(1, n_draws // n_chains))
    flat = (np.arange(n_chains)[:, None] * n_per_chain + keep[None, :]).ravel()
    params = {name: value[flat] for name, value in params.items()}
    data = schema.model_arrays(fit, spec)
    observed = fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE)
    n_time = observed.sizes[dims.TIME]
    rng = np.random.default_rng(seed)

    def terms(lo, hi):
        return evaluate_draws(spec, params, data, lo, hi)

    if paths == "transition":
        stages = np.concatenate([
            simulate_chain(*terms(lo, min(lo + _CHUNK, len(flat)))[:2], n_time, rng)
            for lo in range(0, len(flat), _CHUNK)])
    else:
        stages = stage_paths(terms, len(flat), paths_per_draw=1, seed=rng)
    y_rep = sample_observables(spec, params, stages, rng)
    y_rep[:, ~np.isfinite(observed.values)] = np.nan
    post = fit["posterior"]
    coords = {dims.CHAIN: post[dims.CHAIN].values, dims.DRAW: post[dims.DRAW].values[keep],
              dims.TIME: observed[dims.TIME].values, dims.FEATURE: observed[dims.FEATURE].values}
    shape = (n_chains, len(keep))
    group = xr.Dataset(
        {"features": ((dims.CHAIN, dims.DRAW, dims.TIME, dims.FEATURE),
                      y_rep.reshape(*shape, *y_rep.shape[1:])),
         "stage": ((dims.CHAIN, dims.DRAW, dims.TIME), stages.reshape(*shape, n_time))},
        coords=coords,
        attrs={"paths": paths, "seed": seed, "stages": json.dumps(list(spec.stage_names)),
               "long_name": "replicated observables y_rep ~ p(y | theta^(s)) with stage paths "
                            + ("drawn forward from the fitted chain" if paths == "transition"
                               else "from Pr(stage_1..stage_T | y_1..y_T, theta^(s)) (FFBS)")},
    )
    groups = {name: node.to_dataset() for name, node in fit.children.items() if name != GROUP}
    groups[GROUP] = group
    return xr.DataTree.from_dict({"/": xr.Dataset(attrs=dict(fit.attrs)), **groups})


def ppc_quantities(y: np.ndarray, threshold: np.ndarray) -> dict[str, np.ndarray]:
    """Test quantities of series ``y`` (..., T, D) with NaN for missing, per series and feature.

    ``mean``, ``sd`` (ddof 0), ``q01``, ``q99`` (quantiles), ``acf1`` (correlation of
    ``y_t`` with ``y_{t-1}`` over the pairs both observed) and ``extreme_run`` (mean length of
    the runs of consecutive days above ``threshold`` (D,), a missing day ending a run; 0 if no
    day is above). Each value has shape (..., D).
    """
    y = np.asarray(y, dtype=np.float64)
    out = {"mean": np.nanmean(y, axis=-2), "sd": np.nanstd(y, axis=-2),
           "q01": np.nanquantile(y, 0.01, axis=-2), "q99": np.nanquantile(y, 0.99, axis=-2)}
    a, b = y[..., 1:, :], y[..., :-1, :]
    both = np.isfinite(a) & np.isfinite(b)
    n = both.sum(axis=-2)
    a, b = np.where(both, a, 0.0), np.where(both, b, 0.0)
    ma, mb = a.sum(axis=-2) / n, b.sum(axis=-2) / n
    cov = (a * b).sum(axis=-2) / n - ma * mb
    va = (a * a).sum(axis=-2) / n - ma**2
    vb = (b * b).sum(axis=-2) / n - mb**2
    out["acf1"] = cov / np.sqrt(va * vb)
    above = np.nan_to_num(y, nan=-np.inf) > threshold
    starts = (above[..., 1:, :] & ~above[..., :-1, :]).sum(axis=-2) + above[..., 0, :]
    out["extreme_run"] = np.where(starts > 0, above.sum(axis=-2) / np.maximum(starts, 1), 0.0)
    return out


def ppc_table(tree: xr.DataTree) -> pd.DataFrame:
    """Observed test quantities against their posterior predictive distribution.

    Parameters
    ----------
    tree : xarray.DataTree
        The result of :func:`posterior_predictive`.

    Returns
    -------
    pandas.DataFrame
        One row per (``statistic``, ``item``): for each observable (``item`` = the feature) the
        :data:`STATISTICS` of :func:`ppc_quantities` (``extreme_run`` above the observed 95%
        quantile of that observable), and ``stage_share`` per stage (``item`` = the stage),
        whose ``observed`` is the smoothed share ``mean_t Pr(stage_t = k | y_1..y_T)`` over the
        days that have it (the fitted days; a posterior quantity, not data) and whose replicate
        is the share of the replicated path's days in the stage over the same days (with
        ``paths="smoothed"`` the replicate's mean is that share itself, so its ppp is near 0.5
        by construction; the row is informative for ``paths="transition"``). Columns
        ``observed``, ``replicated_mean``, ``replicated_q05``, ``replicated_q95`` and
        ``ppp = Pr(T(y_rep) >= T(y) | y)`` over the replicates; ``paths`` (the attribute of
        the group).
    """
    if GROUP not in tree.children:
        raise ValueError("no posterior_predictive group: call posterior_predictive(fit) first")
    pp = tree[GROUP]
    obs = tree["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE)
    y = obs.values.astype(np.float64)
    rep = pp["features"].transpose(dims.CHAIN, dims.DRAW, dims.TIME, dims.FEATURE).values
    rep = rep.reshape(-1, *rep.shape[2:])
    threshold = np.nanquantile(y, 0.95, axis=0)
    t_obs, t_rep = ppc_quantities(y, threshold), ppc_quantities(rep, threshold)
    rows = []
    for stat in STATISTICS:
        for d, name in enumerate(obs[dims.FEATURE].values):
            rows.append(_row(stat, str(name), t_obs[stat][d], t_rep[stat][:, d]))
    names = json.loads(pp.attrs["stages"])
    stages = pp["stage"].transpose(dims.CHAIN, dims.DRAW, dims.TIME).values
    stages = stages.reshape(-1, stages.shape[-1])
    smoothed = tree["stages"]["smoothed"].transpose(dims.TIME, dims.STAGE).values
    fitted = np.isfinite(smoothed).all(axis=1)  # an update's new days have no smoothed values
    for k, name in enumerate(names):
        rows.append(_row("stage_share", name, float(smoothed[fitted, k].mean()),
                         (stages[:, fitted] == k).mean(axis=1)))
    table = pd.DataFrame(rows)
    table["paths"] = pp.attrs["paths"]
    return table


def _row(stat: str, item: str, observed: float, replicated: np.ndarray) -> dict:
    replicated = np.asarray(replicated, dtype=np.float64)
    return {"statistic": stat, "item": item, "observed": float(observed),
            "replicated_mean": float(np.mean(replicated)),
            "replicated_q05": float(np.quantile(replicated, 0.05)),
            "replicated_q95": float(np.quantile(replicated, 0.95)),
            "ppp": float(np.mean(replicated >= observed))}
