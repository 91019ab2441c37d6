"""Fit the panel (multi-asset) stage model with NUTS; labelled DataTree out.

The returned ``xarray.DataTree`` holds:

``posterior``
    ``mu``, ``sigma`` (chain, draw, stage, channel); ``P`` (chain, draw, asset, stage_from,
    stage_to) with ``P[a, i, j] = Pr(s_{a,t} = j | s_{a,t-1} = i)`` before the spillover tilt
    (a shared stage: (chain, draw, stage_from, stage_to)); ``spillover`` (chain, draw, asset,
    asset_from), the log-odds added to asset a's move into its top stage per other asset b in
    its top stage the day before (:mod:`stressflow.models.panel.spec`).
``stages``
    ``smoothed`` (time, asset, stage): ``Pr(s_{a,t} = k | y_1..y_T)`` (all assets' data),
    posterior mean; ``filtered`` (time, asset, stage): ``Pr(s_{a,t} = k | y_1..y_t)``;
    ``smoothed_quantile`` / ``filtered_quantile`` (quantile, time, asset, stage): quantiles
    across draws of the per-draw probabilities; ``joint_smoothed`` (time, joint_state):
    ``Pr(J_t = J | y_1..y_T)``; ``observed`` (time, asset): channels present;
    ``filtered_margin_or_worse_quantile`` (quantile, time, asset): quantiles across draws of
    ``Pr(s_{a,t} in {margin_pressure, forced_flow} | y_1..y_t, theta)`` (the stages the model
    has).
``log_likelihood``
    ``y`` (chain, draw, time): ``log p(y_t | y_1..y_{t-1}, theta)`` (all assets' channels).
``sample_stats``
    nutpie's statistics.
``observed_data``
    ``features``, ``raw_features`` (time, channel); ``level`` (time, asset); ``center``,
    ``scale`` (channel): the standardisation, ``features = (raw_features - center) / scale``.
``stage_draws`` (with ``store_draws=True``)
    ``smoothed`` / ``filtered`` (chain, draw, time, asset, stage): every draw's
    ``Pr(s_{a,t} = k | y_1..y_T, theta)`` / ``Pr(s_{a,t} = k | y_1..y_t, theta)``.
``feed_state``
    ``filtered_last`` (chain, draw, joint_state): ``Pr(J_T = J | y_1..y_T, theta)`` per draw at
    the last day, where :func:`stressflow.inference.apps.feed.panel_update.update_panel`
    continues the filter.

Root attributes: ``model_kind = "panel"``, the spec (``panel_spec``, JSON), the schema and
package versions, the date range, the data report and the timings. Save and load it with
:func:`stressflow.inference.schema.save_fit` / ``load_fit`` (atomic, checksummed).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.fitting.assemble import package_version, portable
from stressflow.inference.fitting.initialize import em_start
from stressflow.inference.fitting.sampling import sample_nutpie
from stressflow.models import dims
from stressflow.models.numerics import kernels
from stressflow.models.panel.evaluate import asset_marginals, evaluate, panel_data, param_names
from stressflow.models.panel.pymc_model import build_panel_model, other_channels
from stressflow.models.panel.spec import PanelSpec
from stressflow.models.spec import ModelSpec

__all__ = ["fit_panel", "panel_start", "panel_params", "panel_stage_probabilities",
           "feed_state_dataset", "MODEL_KIND"]

#: Root attribute ``model_kind`` of a panel fit.
MODEL_KIND = schema.PANEL_KIND
# Draws smoothed per compiled batch.
_CHUNK = 64


def panel_start(panel, spec: PanelSpec, seed: int) -> dict[str, np.ndarray]:
    """Start values of the free variables: each asset's own two-or-more-stage EM fit
    (:func:`stressflow.inference.fitting.initialize.em_start` on its channels, stages ordered
    on its ordering channel), spillover 0; a shared stage starts from EM on every channel."""
    k, names = spec.n_stages, list(spec.channels)
    mu = np.zeros((k, len(names)))
    sigma = np.ones((k, len(names)))
    groups = ([(names, spec.order_channels[0])] if spec.coupling == "shared" else
              [([c for c, o in zip(names, spec.channel_asset, strict=True) if o == a], order)
               for a, order in zip(spec.assets, spec.order_channels, strict=True)])
    trans = []
    for cols, order in groups:
        base = ModelSpec.base(n_stages=k, order_feature=order)
        start = em_start(panel.features[cols], base, seed)
        idx = [names.index(c) for c in cols]
        rest = [c for c in cols if c != order]
        mu[:, names.index(order)] = start["mu_order"]
        for j, c in enumerate(rest):
            mu[:, names.index(c)] = start["mu_other"][:, j]
        sigma[:, idx] = start["sigma"]
        trans.append(np.asarray(start["P"]))
    order_idx = [names.index(c) for c in spec.order_channels]
    other_idx = [names.index(c) for c in other_channels(spec)]
    mu_order = mu[:, order_idx].T
    if spec.coupling == "shared":  # one stage: every asset's ordering means follow the EM order
        mu_order = np.sort(mu_order, axis=1)
    out = {"mu_order": mu_order, "mu_other": mu[:, other_idx], "sigma": sigma,
           "P": trans[0] if spec.coupling == "shared" else np.stack(trans)}
    if spec.coupling == "spillover":
        out["spillover_pair"] = np.zeros(len(spec.asset_pairs))
    return out


def panel_params(posterior: xr.Dataset, spec: PanelSpec) -> dict[str, np.ndarray]:
    """Posterior draws of the evaluator's parameters, chains stacked: (n_draws_total, ...)."""
    return {name: posterior[name].values.reshape(-1, *posterior[name].shape[2:])
            for name in param_names(spec)}


def panel_stage_probabilities(spec: PanelSpec, params: dict, data: dict, *,
                              quantiles=dims.DEFAULT_QUANTILES, max_quantile_draws: int = 400,
                              keep_draws: bool = False):
    """Posterior stage probabilities of a panel, per asset and joint.

    Returns
    -------
    dict
        ``smoothed`` / ``filtered`` (T, A, K): posterior means of ``Pr(s_{a,t} = k | y_1..y_T,
        theta)`` / ``Pr(s_{a,t} = k | y_1..y_t, theta)``; ``smoothed_q`` / ``filtered_q``
        (Q, T, A, K): their quantiles over at most ``max_quantile_draws`` evenly spaced draws;
        ``filtered_<group>_q`` (Q, T, A) for each group G of :data:`stressflow.inference.schema
        .STAGE_GROUPS`: quantiles of the per-draw ``Pr(s_{a,t} in G | y_1..y_t, theta)``;
        ``joint_smoothed`` (T, J): posterior mean of ``Pr(J_t = J | y_1..y_T, theta)``;
        ``log_norm`` (S, T): ``log p(y_t | y_1..y_{t-1}, theta^(s))`` for every draw s;
        ``filtered_last`` (S, J): ``Pr(J_T = J | y_1..y_T, theta^(s))``, the filter state at the
        last day; with ``keep_draws``, ``smoothed_draws`` / ``filtered_draws`` (S, T, A, K)
        float32: every draw's ``Pr(s_{a,t} = k | y_1..y_T, theta^(s))`` /
        ``Pr(s_{a,t} = k | y_1..y_t, theta^(s))``.
    """
    n = next(iter(params.values())).shape[0]
    keep = np.unique(np.linspace(0, n - 1, min(n, max_quantile_draws)).round().astype(int))
    sums = {"smoothed": 0.0, "filtered": 0.0, "joint_smoothed": 0.0}
    kept = {"smoothed": [], "filtered": []}
    every = {"smoothed": [], "filtered": []}
    log_norms, lasts = [], []
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        chunk = {k: v[lo:hi] for k, v in params.items()}
        log_init, log_trans, log_lik = evaluate(spec, chunk, data)
        sm, fi, ln = kernels.smooth_many(
            log_init, np.ascontiguousarray(log_trans), np.ascontiguousarray(log_lik))
        log_norms.append(ln)
        lasts.append(fi[:, -1, :])
        sums["joint_smoothed"] = sums["joint_smoothed"] + sm.sum(axis=0)
        sel = keep[(keep >= lo) & (keep < hi)] - lo
        for name, joint in (("smoothed", sm), ("filtered", fi)):
            marg = asset_marginals(spec, joint)
            sums[name] = sums[name] + marg.sum(axis=0)
            kept[name].append(marg[sel])
            if keep_draws:
                every[name].append(marg.astype(np.float32))
    q = np.asarray(quantiles, dtype=np.float64)
    out = {name: value / n for name, value in sums.items()}
    for name in ("smoothed", "filtered"):
        out[f"{name}_q"] = np.quantile(np.concatenate(kept[name]), q, axis=0)
    filtered = np.concatenate(kept["filtered"])
    for group, idx in schema.stage_group_indices(spec.stage_names).items():
        out[f"filtered_{group}_q"] = np.quantile(filtered[..., idx].sum(axis=-1), q, axis=0)
    out["log_norm"] = np.concatenate(log_norms)
    out["filtered_last"] = np.concatenate(lasts)
    if keep_draws:
        out.update({f"{name}_draws": np.concatenate(v) for name, v in every.items()})
    return out


def feed_state_dataset(spec: PanelSpec, posterior: xr.Dataset, filtered_last: np.ndarray,
                       day) -> xr.Dataset:
    """Group ``feed_state``: ``filtered_last`` (chain, draw, joint_state) =
    ``Pr(J_T = J | y_1..y_T, theta)`` per draw at the last day T (``day``), from the (S, J)
    array ``filtered_last`` with draws in chains-stacked order."""
    n_chains, n_draws = posterior.sizes[dims.CHAIN], posterior.sizes[dims.DRAW]
    out = xr.Dataset(
        {"filtered_last": ((dims.CHAIN, dims.DRAW, dims.JOINT_STATE),
                           filtered_last.reshape(n_chains, n_draws, -1))},
        coords={dims.CHAIN: posterior[dims.CHAIN].values, dims.DRAW: posterior[dims.DRAW].values,
                dims.JOINT_STATE: spec.joint_names()})
    out["filtered_last"].attrs.update({
        "long_name": "Pr(J_T = J | y_1..y_T, theta) per draw at the last day T (the filter "
                     "state the next update continues)", "date": str(pd.Timestamp(day).date())})
    return out


def _stage_draws(probs: dict, posterior: xr.Dataset, coords: dict) -> xr.Dataset:
    """Every draw's per-asset stage probabilities, (chain, draw, time, asset, stage)."""
    n_chains, n_draws = posterior.sizes[dims.CHAIN], posterior.sizes[dims.DRAW]
    five = (dims.CHAIN, dims.DRAW, dims.TIME, dims.ASSET, dims.STAGE)
    out = xr.Dataset(
        {name: (five, probs[f"{name}_draws"].reshape(n_chains, n_draws,
                                                     *probs[f"{name}_draws"].shape[1:]))
         for name in ("smoothed", "filtered")},
        coords={dims.CHAIN: posterior[dims.CHAIN].values, dims.DRAW: posterior[dims.DRAW].values,
                **{k: coords[k] for k in (dims.TIME, dims.ASSET, dims.STAGE)}})
    out["smoothed"].attrs["long_name"] = "Pr(s_{a,t} = k | y_1..y_T, theta), per draw"
    out["filtered"].attrs["long_name"] = "Pr(s_{a,t} = k | y_1..y_t, theta), per draw"
    return out


def fit_panel(panel, spec: PanelSpec | None = None, *, chains: int = 4, draws: int = 1000,
              tune: int = 1000, seed: int = 0, target_accept: float = 0.8,
              progress_bar: bool = False, cores: int | None = None,
              quantiles=dims.DEFAULT_QUANTILES, store_draws: bool = False,
              **spec_options) -> xr.DataTree:
    """Fit the panel stage model by NUTS (nutpie) from per-asset EM starts.

    Parameters
    ----------
    panel : PanelData or str
        :func:`stressflow.data.panel.prepare_panel` output, or a bundled panel name.
    spec : PanelSpec, optional
        Default: :meth:`PanelSpec.from_panel` with ``spec_options`` (e.g. ``coupling``,
        ``n_stages``).
    chains, draws, tune, seed, target_accept, progress_bar, cores
        As in :func:`stressflow.inference.fit`; the same seed gives the same numbers.
    store_draws : bool
        Also store every draw's per-asset stage probabilities (group ``stage_draws``; about
        0.8 GB for the five-asset US panel at 4 x 1000 draws).

    Returns
    -------
    xarray.DataTree
        Groups and probabilities in the module docstring.
    """
    from stressflow.data.panel import prepare_panel

    if isinstance(panel, str):
        panel = prepare_panel(panel)
    spec = spec or PanelSpec.from_panel(panel, **spec_options)
    t0 = time.perf_counter()
    model = build_panel_model(panel.features, spec)
    start = panel_start(panel, spec, seed)
    t_start = time.perf_counter() - t0
    trace, t_sample, _ = sample_nutpie(
        model, start, chains=chains, draws=draws, tune=tune, seed=seed,
        progress_bar=progress_bar, target_accept=target_accept, cores=cores,
        cache_key=json.dumps([MODEL_KIND, spec.to_dict()]))
    posterior = trace["posterior"].to_dataset() if isinstance(trace, xr.DataTree) else (
        trace.posterior)
    posterior = posterior.drop_vars([v for v in posterior.data_vars if str(v) == "hmm_loglik"])
    t1 = time.perf_counter()
    data = panel_data(spec, panel.features)
    probs = panel_stage_probabilities(spec, panel_params(posterior, spec), data,
                                      quantiles=quantiles, keep_draws=store_draws)
    t_post = time.perf_counter() - t1
    time_index = pd.DatetimeIndex(panel.features.index, name=dims.TIME)
    coords = {dims.TIME: time_index, dims.ASSET: list(spec.assets),
              dims.STAGE: list(spec.stage_names), dims.QUANTILE: list(quantiles)}
    tas = (dims.TIME, dims.ASSET, dims.STAGE)
    observed = np.stack([np.isfinite(panel.features[panel.asset_channels(a)].to_numpy()).sum(1)
                         for a in spec.assets], axis=1)
    stages = xr.Dataset({
        "smoothed": (tas, probs["smoothed"]), "filtered": (tas, probs["filtered"]),
        "smoothed_quantile": ((dims.QUANTILE, *tas), probs["smoothed_q"]),
        "filtered_quantile": ((dims.QUANTILE, *tas), probs["filtered_q"]),
        "joint_smoothed": ((dims.TIME, dims.JOINT_STATE), probs["joint_smoothed"]),
        "observed": ((dims.TIME, dims.ASSET), observed.astype(np.int8)),
        **{f"filtered_{group}_quantile": ((dims.QUANTILE, dims.TIME, dims.ASSET),
                                          probs[f"filtered_{group}_q"])
           for group in schema.STAGE_GROUPS},
    }, coords={**coords, dims.JOINT_STATE: spec.joint_names()})
    stages["smoothed"].attrs["long_name"] = "Pr(s_{a,t} = k | y_1..y_T), posterior mean"
    stages["filtered"].attrs["long_name"] = "Pr(s_{a,t} = k | y_1..y_t), posterior mean"
    stages["joint_smoothed"].attrs["long_name"] = "Pr(J_t = J | y_1..y_T), posterior mean"
    n_chains, n_draws = posterior.sizes[dims.CHAIN], posterior.sizes[dims.DRAW]
    loglik = xr.Dataset({"y": ((dims.CHAIN, dims.DRAW, dims.TIME),
                               probs["log_norm"].reshape(n_chains, n_draws, -1))},
                        coords={dims.CHAIN: posterior[dims.CHAIN].values,
                                dims.DRAW: posterior[dims.DRAW].values, dims.TIME: time_index})
    chan = {dims.TIME: time_index, dims.CHANNEL: list(spec.channels)}
    observed_data = xr.Dataset({
        "features": ((dims.TIME, dims.CHANNEL), panel.features.to_numpy()),
        "raw_features": ((dims.TIME, dims.CHANNEL), panel.raw.to_numpy()),
        "level": ((dims.TIME, dims.ASSET), panel.levels[list(spec.assets)].to_numpy()),
        **{name: (dims.CHANNEL, np.full(len(spec.channels), fill) if value is None  # given
                  else value[list(spec.channels)].to_numpy(np.float64))  # standardised
           for name, value, fill in (("center", panel.center, 0.0),
                                     ("scale", panel.scale, 1.0))},
    }, coords={**chan, dims.ASSET: list(spec.assets)})
    feed_state = feed_state_dataset(spec, posterior, probs["filtered_last"], time_index[-1])
    sample_stats = (trace["sample_stats"].to_dataset() if isinstance(trace, xr.DataTree)
                    else trace.sample_stats)
    tree = xr.DataTree.from_dict({k: portable(v) for k, v in {
        "posterior": posterior, "stages": stages, "log_likelihood": loglik,
        "sample_stats": sample_stats, "observed_data": observed_data,
        "feed_state": feed_state,
        **({"stage_draws": _stage_draws(probs, posterior, coords)} if store_draws else {}),
    }.items()})
    tree.attrs.update({
        "model_kind": MODEL_KIND, "panel_spec": json.dumps(spec.to_dict()),
        "schema_version": schema.SCHEMA_VERSION, "stressflow_version": package_version(),
        "data_start": str(time_index[0].date()), "data_end": str(time_index[-1].date()),
        "data_report": json.dumps(panel.report), "seed": int(seed),
        "timings": json.dumps({"start_s": round(t_start, 2), "sample_s": round(t_sample, 2),
                               "postprocess_s": round(t_post, 2)}),
    })
    return tree
