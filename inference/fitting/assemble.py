"""Build a fit's ``xarray.DataTree`` from the sampler's trace (the writer of the fit schema).

The layout is documented in :mod:`stressflow.inference.fitting.fit` and owned by
:mod:`stressflow.inference.schema`; the stage probabilities are computed from the posterior
draws with the model's one evaluator (:func:`stressflow.models.evaluate.evaluate_draws`).
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.postprocess.stages import stage_probabilities
from stressflow.models import dims
from stressflow.models.emissions import ranked_stage_names
from stressflow.models.evaluate import evaluate, evaluate_draws, mean_params, model_data
from stressflow.models.numerics import kernels

__all__ = ["assemble", "data_hash", "package_version"]

def package_version() -> str:
    try:
        return version("stressflow")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def data_hash(features: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(features.index.asi8).tobytes())
    h.update(np.ascontiguousarray(features.to_numpy(dtype=np.float64)).tobytes())
    h.update(json.dumps([str(c) for c in features.columns]).encode())
    return h.hexdigest()


def assemble(trace, prepared, spec, *, quantiles, max_quantile_draws, store_draws,
             pointwise_loglik) -> xr.DataTree:
    """The fit DataTree (groups and variables of :mod:`stressflow.inference.fitting.fit`) from
    a sampler's trace of the model ``spec`` fitted to ``prepared``; root attributes other than
    the observed-data layout are added by the caller."""
    features = prepared.features
    time_index = pd.DatetimeIndex(features.index, name=dims.TIME)
    posterior = trace["posterior"].to_dataset() if isinstance(trace, xr.DataTree) else (
        trace.posterior
    )
    posterior = posterior.drop_vars([v for v in posterior.data_vars if str(v) == "hmm_loglik"])
    stage_names = list(spec.stage_names)
    coords = {dims.STAGE: stage_names, dims.STAGE_FROM: stage_names, dims.STAGE_TO: stage_names,
              dims.STAGE_RANKED: ranked_stage_names(spec)}
    if spec.time_varying:
        coords[dims.COVARIATE] = list(spec.transition_covariates)
    posterior = posterior.assign_coords(
        {k: v for k, v in coords.items() if k in posterior.dims})
    diag = xr.DataArray(
        np.diagonal(posterior["P"].values, axis1=-2, axis2=-1),
        dims=(dims.CHAIN, dims.DRAW, dims.STAGE),
    )
    posterior["expected_duration"] = 1.0 / (1.0 - diag)
    posterior["expected_duration"].attrs["long_name"] = (
        "expected stage duration 1 / (1 - P[k, k]) in trading days"
    )

    params, (n_chains, n_draws) = schema.posterior_params(posterior, spec)
    covariates = getattr(prepared, "covariates", None)
    data = model_data(spec, features, covariates if spec.time_varying else None)
    mask = np.isfinite(features.to_numpy(dtype=np.float64))
    n_stages = spec.n_stages
    probs = stage_probabilities(
        lambda lo, hi: evaluate_draws(spec, params, data, lo, hi), n_chains * n_draws,
        (len(time_index), n_stages), schema.chain_of_draw((n_chains, n_draws)),
        quantiles=quantiles, max_quantile_draws=max_quantile_draws,
        keep_log_norm=pointwise_loglik, keep_draws=store_draws,
        filtered_groups=schema.stage_group_indices(stage_names),
    )

    # Viterbi path under the posterior-mean parameters
    log_init, log_trans, log_lik = evaluate(spec, mean_params(params), data)
    path = kernels.viterbi(log_init, np.ascontiguousarray(log_trans),
                           np.ascontiguousarray(log_lik))

    stage_coords = {dims.TIME: time_index, dims.STAGE: stage_names}
    q_coords = {dims.QUANTILE: list(quantiles), **stage_coords}
    stages = xr.Dataset(
        {
            "smoothed": ((dims.TIME, dims.STAGE), probs.smoothed_mean),
            "filtered": ((dims.TIME, dims.STAGE), probs.filtered_mean),
            "smoothed_quantile": ((dims.QUANTILE, dims.TIME, dims.STAGE), probs.smoothed_q),
            "filtered_quantile": ((dims.QUANTILE, dims.TIME, dims.STAGE), probs.filtered_q),
            "viterbi": ((dims.TIME,), np.asarray(stage_names, dtype=object)[path].astype(str)),
            "observed": ((dims.TIME,), mask.sum(axis=1).astype(np.int8)),
        },
        coords=q_coords,
    )
    stages["smoothed"].attrs["long_name"] = "Pr(stage_t = k | y_1..y_T), posterior mean"
    stages["filtered"].attrs["long_name"] = "Pr(stage_t = k | y_1..y_t), posterior mean"
    stages["smoothed_quantile"].attrs["long_name"] = (
        "quantiles across posterior draws of Pr(stage_t = k | y_1..y_T, theta)"
    )
    stages["filtered_quantile"].attrs["long_name"] = (
        "quantiles across posterior draws of Pr(stage_t = k | y_1..y_t, theta)"
    )
    stages["viterbi"].attrs["long_name"] = (
        "argmax_path Pr(stage_1..T | y_1..y_T, posterior-mean theta)"
    )
    stages["observed"].attrs["long_name"] = "number of observables present on the day"
    for name, members in schema.STAGE_GROUPS.items():
        var = f"filtered_{name}_quantile"
        stages[var] = ((dims.QUANTILE, dims.TIME), probs.filtered_group_q[name])
        stages[var].attrs["long_name"] = (
            f"quantiles across posterior draws of Pr(stage_t in {{{', '.join(members)}}} | "
            "y_1..y_t, theta)"
        )
    stages["in_fit_window"] = ((dims.TIME,), np.ones(len(time_index), dtype=bool))
    stages["in_fit_window"].attrs["long_name"] = (
        "day inside the data the parameters were fitted to (smoothed values exist); False for "
        "days added later by stressflow.inference.apps.feed.update (filtered only)"
    )
    chain_agree = _chain_agreement(probs.chain_smoothed_mean)
    stages["chain_agreement"] = ((dims.CHAIN,), chain_agree)
    stages["chain_agreement"].attrs["long_name"] = (
        "share of days on which the chain's most probable smoothed stage equals the pooled one"
    )
    stages["chain_stage_days"] = ((dims.CHAIN, dims.STAGE),
                                  probs.chain_smoothed_mean.sum(axis=1))
    stages["chain_stage_days"].attrs["long_name"] = (
        "sum over days of the chain's mean Pr(stage_t = k | y_1..y_T, theta): the expected "
        "number of days in stage k under that chain's draws"
    )
    stages = stages.assign_coords({dims.CHAIN: posterior[dims.CHAIN].values})

    posterior["filtered_last"] = (
        (dims.CHAIN, dims.DRAW, dims.STAGE), probs.filtered_last.reshape(n_chains, n_draws, -1)
    )
    posterior["filtered_last"].attrs.update({
        "long_name": "Pr(stage_T = k | y_1..y_T, theta) per draw at the last fitted day T "
                     "(the filter state that stressflow.inference.apps.feed.update continues)",
        "date": str(time_index[-1].date()),
    })

    if store_draws:
        shape = (n_chains, n_draws, len(time_index), n_stages)
        four = (dims.CHAIN, dims.DRAW, dims.TIME, dims.STAGE)
        posterior = posterior.assign_coords({dims.TIME: time_index})
        posterior["filtered_prob"] = (four, probs.filtered_draws.reshape(shape))
        posterior["smoothed_prob"] = (four, probs.smoothed_draws.reshape(shape))

    groups: dict[str, xr.Dataset] = {"posterior": posterior, "stages": stages}
    if pointwise_loglik:
        groups["log_likelihood"] = xr.Dataset(
            {"y": ((dims.CHAIN, dims.DRAW, dims.TIME),
                   probs.log_norm.reshape(n_chains, n_draws, -1))},
            coords={dims.CHAIN: posterior[dims.CHAIN].values,
                    dims.DRAW: posterior[dims.DRAW].values, dims.TIME: time_index},
        )
    stats = trace["sample_stats"].to_dataset() if isinstance(trace, xr.DataTree) else (
        trace.sample_stats
    )
    groups["sample_stats"] = portable(stats)
    feat_coords = {dims.TIME: time_index, dims.FEATURE: [str(c) for c in features.columns]}
    observed = xr.Dataset(
        {
            "features": ((dims.TIME, dims.FEATURE), features.to_numpy(dtype=np.float64)),
            "raw_features": ((dims.TIME, dims.FEATURE),
                             prepared.raw.to_numpy(dtype=np.float64)),
            "close": ((dims.TIME,), prepared.prices["close"].to_numpy(dtype=np.float64)),
        },
        coords=feat_coords,
    )
    kept = _kept_price_columns(prepared)
    for column in kept:
        observed[schema.price_variable(column)] = (
            (dims.TIME,), prepared.prices[column].to_numpy(dtype=np.float64)
        )
    observed.attrs["price_columns"] = json.dumps(kept)
    if spec.time_varying:
        cov_coords = {dims.TIME: time_index, dims.COVARIATE: list(spec.transition_covariates)}
        observed["covariates"] = xr.DataArray(data["z"], dims=(dims.TIME, dims.COVARIATE),
                                              coords=cov_coords)
        raw_cov = getattr(prepared, "raw_covariates", None)
        if raw_cov is not None:
            observed["raw_covariates"] = xr.DataArray(
                raw_cov[list(spec.transition_covariates)].to_numpy(dtype=np.float64),
                dims=(dims.TIME, dims.COVARIATE), coords=cov_coords)
    groups["observed_data"] = observed
    return xr.DataTree.from_dict({k: portable(v) for k, v in groups.items()})


def _kept_price_columns(prepared) -> list[str]:
    """Input columns stored with the fit: OHLC/volume present, plus spread and extra columns."""
    tr = prepared.transform
    wanted = [*schema.PRICE_COLUMNS_KEPT]
    if tr.spread_column is not None:
        wanted.append(tr.spread_column)
    wanted += [f for f in tr.features if f not in dims.FEATURES]
    present = [str(c) for c in prepared.prices.columns]
    out: list[str] = []
    for column in wanted:
        if column in present and column not in out:
            out.append(column)
    return out


def _chain_agreement(chain_smoothed: np.ndarray) -> np.ndarray:
    pooled = chain_smoothed.mean(axis=0).argmax(axis=-1)
    return (chain_smoothed.argmax(axis=-1) == pooled[None, :]).mean(axis=1)


def portable(ds: xr.Dataset) -> xr.Dataset:
    """Drop variables netCDF cannot store (object dtypes other than strings)."""
    drop = [
        v for v, da in ds.variables.items()
        if da.dtype == object and not all(isinstance(x, str) for x in da.values.ravel()[:10])
    ]
    return ds.drop_vars(drop)
