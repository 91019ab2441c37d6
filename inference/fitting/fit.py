"""Fit the four-stage stress HMM with NUTS and return a labelled ArviZ DataTree.

The returned ``xarray.DataTree`` (ArviZ 1.x's container) holds:

``posterior``
    ``mu`` (chain, draw, stage, feature), ``sigma`` (chain, draw, stage, feature),
    ``P`` (chain, draw, stage_from, stage_to) with ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``,
    ``expected_duration`` (chain, draw, stage) ``= 1 / (1 - P[k, k])`` trading days, ``nu``
    (Student-t only), ``filtered_last`` (chain, draw, stage) ``= Pr(stage_T = k | y_1..y_T,
    theta)`` per draw at the last day (the filter state that
    :func:`stressflow.inference.apps.feed.update` continues), and, with ``store_draws=True``, the
    per-draw probabilities ``filtered_prob`` / ``smoothed_prob`` (chain, draw, time, stage).
``stages``
    ``smoothed`` (time, stage): ``Pr(stage_t = k | y_1..y_T)`` averaged over the posterior;
    ``filtered`` (time, stage): ``Pr(stage_t = k | y_1..y_t)`` averaged over the posterior;
    ``smoothed_quantile`` / ``filtered_quantile`` (quantile, time, stage): quantiles across
    draws of the per-draw probabilities; ``viterbi`` (time): the most probable stage path under
    the posterior-mean parameters; ``observed`` (time): how many features were observed;
    ``filtered_margin_or_worse_quantile`` (quantile, time): quantiles across draws of
    ``Pr(stage_t in {margin_pressure, forced_flow} | y_1..y_t, theta)``; ``in_fit_window``
    (time): True on the fitted days (False on days appended by ``feed.update``).
``log_likelihood``
    ``y`` (chain, draw, time): ``log p(y_t | y_1..y_{t-1}, theta)``, the one-step-ahead
    predictive decomposition of the marginal likelihood (its sum over time is
    ``log p(y_1..y_T | theta)``).
``sample_stats``
    nutpie's (or PyMC's) sampler statistics, including ``diverging``.
``observed_data``
    ``features`` (time, feature): the standardised observables the model saw (NaN = missing);
    ``raw_features``: the same before standardising; ``close`` (time) and, where the input
    has them, ``open``, ``high``, ``low``, ``volume`` and the spread / extra input columns
    (``input_<name>``), the validated rows listed in the attribute ``price_columns``.

Root attributes carry the package and schema versions, the model options, the feature
transform, the data report, a hash of the data, the date range and the timings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import warnings
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference.postprocess.stages import stage_probabilities
from stressflow.models import dims
from stressflow.models.emissions import masked_observations
from stressflow.models.numerics import kernels
from stressflow.models.pymc_model import ModelSpec, build_model

__all__ = [
    "fit",
    "FitWarning",
    "SCHEMA_VERSION",
    "READABLE_SCHEMA_VERSIONS",
    "SAMPLERS",
    "STAGE_GROUPS",
]

#: Layout version of the fit DataTree. 2 added the filter state ``posterior/filtered_last``,
#: ``stages/in_fit_window``, ``stages/filtered_margin_or_worse_quantile`` and the price rows in
#: ``observed_data`` (what :mod:`stressflow.inference.apps.feed` needs to update without refitting).
SCHEMA_VERSION = 2
#: Schema versions :func:`stressflow.inference.load_fit` reads (version 1 files lack the
#: feed's fields; the feed functions say so).
READABLE_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)
#: Groups of stages whose per-draw filtered probability ``Pr(stage_t in G | y_1..y_t, theta)``
#: gets its own quantiles across draws (``stages/filtered_<name>_quantile``).
STAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "margin_or_worse": ("margin_pressure", "forced_flow"),
}
#: Price columns kept in ``observed_data`` (when present) so that new rows can be turned into
#: observables with the same trailing windows; the spread and extra columns are kept too.
PRICE_COLUMNS_KEPT: tuple[str, ...] = ("open", "high", "low", "close", "volume")
SAMPLERS = ("nutpie", "pymc")
#: nutpie mass-matrix adaptations offered by :func:`fit`.
ADAPTATIONS = ("low_rank", "diag")
_JITTER_SD = 0.05
_PARAMS = ("mu", "sigma", "P", "nu")


class FitWarning(UserWarning):
    """A fit finished but its diagnostics say the result should not be trusted as is."""


def _source_name(data) -> str:
    """What the fit was given: a bundled dataset name or a file path ("" for a DataFrame)."""
    from pathlib import Path

    if isinstance(data, str | Path):
        return str(data)
    return ""


def _package_version() -> str:
    try:
        return version("stressflow")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def _data_hash(features: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(features.index.asi8).tobytes())
    h.update(np.ascontiguousarray(features.to_numpy(dtype=np.float64)).tobytes())
    h.update(json.dumps([str(c) for c in features.columns]).encode())
    return h.hexdigest()


#: Compiled nutpie log densities of this process, keyed by what changes the graph (the model
#: options and the feature names); a later fit with the same key swaps in its data with
#: ``with_data`` instead of compiling again (the data are shared variables of any length).
_NUTPIE_CACHE: dict[str, tuple] = {}


def clear_compile_cache() -> None:
    """Forget the compiled log densities kept for reuse (see ``fit``'s ``timings``)."""
    _NUTPIE_CACHE.clear()


def _nutpie_compiled(model, start, cache_key):
    """``(compiled, model_it_was_built_from, cached)`` for ``model``'s data."""
    import nutpie

    hit = _NUTPIE_CACHE.get(cache_key) if cache_key is not None else None
    if hit is None:
        compiled = nutpie.compile_pymc_model(model, initial_points=start, jitter_rvs=set())
        if cache_key is not None:
            _NUTPIE_CACHE[cache_key] = (model, compiled)
        return compiled, model, False
    base_model, compiled = hit
    data = {var.name: var.get_value() for var in model.data_vars}
    return compiled.with_data(**data), base_model, True


def _sample_nutpie(model, start, *, chains, draws, tune, seed, progress_bar, target_accept,
                   cache_key=None, adaptation="low_rank"):
    import nutpie
    from pymc.initial_point import make_initial_point_fn

    compiled, base_model, cached = _nutpie_compiled(model, start, cache_key)
    # the start in nutpie's flat unconstrained order, from this fit's start values
    point_fn = make_initial_point_fn(model=base_model, overrides=start, jitter_rvs=set(),
                                     return_transformed=True)
    # nutpie's flat vector: the free variables' unconstrained values in model.free_RVs order
    names = [base_model.rvs_to_values[rv].name for rv in base_model.free_RVs]

    def base_point(chain_seed):
        point = point_fn(chain_seed)
        return np.concatenate([np.ravel(point[name]) for name in names])

    def jittered_point(chain_seed):
        x = np.asarray(base_point(chain_seed), dtype=np.float64)
        rng = np.random.default_rng([seed, int(chain_seed) % (2**63)])
        return x + rng.normal(0.0, _JITTER_SD, size=x.shape)

    compiled = dataclasses.replace(compiled, initial_point_func=jittered_point)
    t0 = time.perf_counter()
    trace = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=min(chains, os.cpu_count() or 1),
        seed=seed,
        progress_bar=progress_bar,
        save_warmup=False,
        target_accept=target_accept,
        adaptation=adaptation,
    )
    return trace, time.perf_counter() - t0, cached


def _sample_pymc(model, start, *, chains, draws, tune, seed, progress_bar, target_accept,
                 cache_key=None, adaptation=None):
    import pymc as pm

    rng = np.random.default_rng(seed)
    initvals = []
    for _ in range(chains):
        initvals.append({k: np.asarray(v) for k, v in start.items()})
    t0 = time.perf_counter()
    with model:
        trace = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=min(chains, os.cpu_count() or 1),
            random_seed=rng,
            progress_bar=progress_bar,
            initvals=initvals,
            init="adapt_diag",
            target_accept=target_accept,
            compute_convergence_checks=False,
        )
    return trace, time.perf_counter() - t0, False


def _log_trans_draws(trans: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(trans)


def fit(
    data,
    *,
    start=None,
    end=None,
    spec: ModelSpec | None = None,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 2000,
    seed: int = 0,
    sampler: str = "nutpie",
    target_accept: float = 0.8,
    init: str = "em",
    adaptation: str = "low_rank",
    progress_bar: bool = False,
    quantiles: tuple[float, ...] = dims.DEFAULT_QUANTILES,
    max_quantile_draws: int = 1000,
    store_draws: bool = False,
    pointwise_loglik: bool = True,
    **prepare_kwargs,
) -> xr.DataTree:
    """Fit the stage model by NUTS and compute posterior stage probabilities.

    Parameters
    ----------
    data : str, path, DataFrame or PreparedData
        A bundled dataset name (see :func:`stressflow.data.list_datasets`), a CSV/Parquet
        path, a price DataFrame, or the output of :func:`stressflow.data.prepare`.
    start, end : date-like, optional
        Fit window (inclusive); trailing-window observables use history before ``start``.
    spec : ModelSpec, optional
        Emission family, transition structure and priors.
    chains, draws, tune : int
        NUTS chains, kept draws and tuning iterations per chain. The default tuning is long
        (2000): on the S&P 500 1990-2018 (7,307 days, 4 x 1000 draws, ``diag`` adaptation)
        the slowest direction (the volume scale of the calm stages) reached bulk ESS 376-700
        and R-hat 1.006-1.012 after 1000 tuning steps, 929 and 1.004 after 2000 (3,409 and
        1.005 with the default ``low_rank`` adaptation).
    seed : int
        Seed of everything random (k-means start, jitter, sampler): the same seed gives the
        same numbers.
    init : {"em", "kmeans"}
        Starting point of every chain (before a small seeded jitter): ``"em"`` (default)
        Baum-Welch EM from several k-means starts, keeping the highest log posterior;
        ``"kmeans"`` the k-means solution alone (see
        :mod:`stressflow.inference.fitting.initialize`).
    adaptation : {"low_rank", "diag"}
        nutpie's mass-matrix adaptation. ``"low_rank"`` (default) adds a low-rank correction
        to the diagonal mass matrix: measured on the simulated T = 5,000 standard fit (4 x
        1000 + 1000) it gave min bulk ESS 5,769 against 2,153 with ``"diag"`` (7.0 against
        9.3 leapfrog steps per draw). Ignored by ``sampler="pymc"``.
    sampler : {"nutpie", "pymc"}
        ``"nutpie"`` (default, the fastest measured here) compiles the log density with numba;
        ``"pymc"`` uses PyMC's own NUTS.
    quantiles : tuple of float
        Quantiles across draws reported beside the posterior-mean probabilities.
    max_quantile_draws : int
        At most this many (evenly thinned) draws enter the quantiles; means use every draw.
    store_draws : bool
        Also store per-draw ``filtered_prob`` and ``smoothed_prob`` (chain, draw, time, stage)
        in the posterior (memory: 8 bytes x draws x days x 4).
    pointwise_loglik : bool
        Store the ``log_likelihood`` group.
    **prepare_kwargs
        Passed to :func:`stressflow.data.prepare` (e.g. ``spread_column``).

    Returns
    -------
    xarray.DataTree
        See the module docstring for the groups and what each probability is.

    Warns
    -----
    FitWarning
        When max R-hat > 1.01, there are divergences, the bulk ESS is low, or the chains
        disagree on the meaning of the stages.
    """
    from stressflow.data import PreparedData, prepare

    spec = spec or ModelSpec()
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if init not in ("em", "kmeans"):
        raise ValueError(f"init must be 'em' or 'kmeans', got {init!r}")
    if adaptation not in ADAPTATIONS:
        raise ValueError(f"adaptation must be one of {ADAPTATIONS}, got {adaptation!r}")
    for name, value, low in (("chains", chains, 1), ("draws", draws, 1), ("tune", tune, 0)):
        if not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(data, PreparedData):
        if start is not None or end is not None or prepare_kwargs:
            raise ValueError("start/end and data options apply when preparing: pass raw data")
        prepared = data
    else:
        prepared = prepare(data, start=start, end=end, **prepare_kwargs)
    features = prepared.features

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    from stressflow.inference.fitting.initialize import em_start, kmeans_start

    start_point = (em_start if init == "em" else kmeans_start)(features, spec, seed)
    model = build_model(features, spec)
    timings["build"] = time.perf_counter() - t0
    sample = _sample_nutpie if sampler == "nutpie" else _sample_pymc
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="pytensor")
        trace, timings["sampling"], cached = sample(
            model, start_point, chains=chains, draws=draws, tune=tune, seed=seed,
            progress_bar=progress_bar, target_accept=target_accept,
            cache_key=json.dumps([spec.to_dict(), [str(c) for c in features.columns]]),
            adaptation=adaptation,
        )
    timings["compile"] = time.perf_counter() - t0 - timings["sampling"]
    timings["compile_cached"] = float(cached)

    t0 = time.perf_counter()
    result = _assemble(
        trace, prepared, spec, quantiles=quantiles, max_quantile_draws=max_quantile_draws,
        store_draws=store_draws, pointwise_loglik=pointwise_loglik,
    )
    timings["postprocess"] = time.perf_counter() - t0
    result.attrs.update(
        {
            "stressflow_version": _package_version(),
            "schema_version": SCHEMA_VERSION,
            "created": pd.Timestamp.now(tz="UTC").isoformat(),
            "data_hash": _data_hash(features),
            "start": str(features.index[0].date()),
            "end": str(features.index[-1].date()),
            "n_days": int(len(features)),
            "model_spec": json.dumps(spec.to_dict()),
            "transform": json.dumps(prepared.transform.to_dict()),
            "data_report": json.dumps(prepared.report.to_dict(), default=str),
            "source": _source_name(data),
            "fit_options": json.dumps(
                {"chains": chains, "draws": draws, "tune": tune, "seed": seed,
                 "sampler": sampler, "target_accept": target_accept, "init": init,
                 "adaptation": adaptation,
                 "quantiles": list(quantiles), "max_quantile_draws": max_quantile_draws}
            ),
            "timings": json.dumps(timings),
        }
    )
    from stressflow.inference.postprocess.diagnostics import check_fit

    check_fit(result, warn=True)
    return result


def _assemble(trace, prepared, spec, *, quantiles, max_quantile_draws, store_draws,
              pointwise_loglik) -> xr.DataTree:
    features = prepared.features
    time_index = pd.DatetimeIndex(features.index, name=dims.TIME)
    posterior = trace["posterior"].to_dataset() if isinstance(trace, xr.DataTree) else (
        trace.posterior
    )
    posterior = posterior.drop_vars([v for v in posterior.data_vars if str(v) == "hmm_loglik"])
    posterior = posterior.assign_coords({dims.STAGE: list(dims.STAGES),
                                         dims.STAGE_FROM: list(dims.STAGES),
                                         dims.STAGE_TO: list(dims.STAGES)})
    diag = xr.DataArray(
        np.diagonal(posterior["P"].values, axis1=-2, axis2=-1),
        dims=(dims.CHAIN, dims.DRAW, dims.STAGE),
    )
    posterior["expected_duration"] = 1.0 / (1.0 - diag)
    posterior["expected_duration"].attrs["long_name"] = (
        "expected stage duration 1 / (1 - P[k, k]) in trading days"
    )

    n_chains, n_draws = posterior.sizes[dims.CHAIN], posterior.sizes[dims.DRAW]
    flat = (n_chains * n_draws,)

    def stacked(name, tail):
        return posterior[name].transpose(dims.CHAIN, dims.DRAW, *tail).values.reshape(
            flat + posterior[name].shape[2:]
        )

    mu = stacked("mu", (dims.STAGE, dims.FEATURE))
    sigma = stacked("sigma", (dims.STAGE, dims.FEATURE))
    trans = stacked("P", (dims.STAGE_FROM, dims.STAGE_TO))
    nu = stacked("nu", (dims.STAGE,)) if "nu" in posterior else None
    y0, mask = masked_observations(features.to_numpy(dtype=np.float64))
    n_stages = len(dims.STAGES)
    log_init = np.full(n_stages, -np.log(n_stages))
    chain_of_draw = np.repeat(np.arange(n_chains), n_draws)
    probs = stage_probabilities(
        y0, mask, mu, sigma, _log_trans_draws(trans), log_init, chain_of_draw, nu=nu,
        quantiles=quantiles, max_quantile_draws=max_quantile_draws,
        keep_log_norm=pointwise_loglik, keep_draws=store_draws,
        filtered_groups={name: [dims.STAGES.index(k) for k in members]
                         for name, members in STAGE_GROUPS.items()},
    )

    # Viterbi path under the posterior-mean parameters
    from scipy.special import gammaln
    from stressflow.models.emissions import emission_loglik

    mean_ll = emission_loglik(
        y0, mask, mu.mean(0), sigma.mean(0), None if nu is None else nu.mean(0),
        xp=np, gammaln=gammaln,
    )
    path = kernels.viterbi(log_init, _log_trans_draws(trans.mean(0)), np.ascontiguousarray(mean_ll))

    stage_coords = {dims.TIME: time_index, dims.STAGE: list(dims.STAGES)}
    q_coords = {dims.QUANTILE: list(quantiles), **stage_coords}
    stages = xr.Dataset(
        {
            "smoothed": ((dims.TIME, dims.STAGE), probs.smoothed_mean),
            "filtered": ((dims.TIME, dims.STAGE), probs.filtered_mean),
            "smoothed_quantile": ((dims.QUANTILE, dims.TIME, dims.STAGE), probs.smoothed_q),
            "filtered_quantile": ((dims.QUANTILE, dims.TIME, dims.STAGE), probs.filtered_q),
            "viterbi": ((dims.TIME,), np.asarray(dims.STAGES, dtype=object)[path].astype(str)),
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
    for name, members in STAGE_GROUPS.items():
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
    groups["sample_stats"] = _portable(stats)
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
        observed[price_variable(column)] = (
            (dims.TIME,), prepared.prices[column].to_numpy(dtype=np.float64)
        )
    observed.attrs["price_columns"] = json.dumps(kept)
    groups["observed_data"] = observed
    return xr.DataTree.from_dict({k: _portable(v) for k, v in groups.items()})


def price_variable(column: str) -> str:
    """Name of the ``observed_data`` variable holding input column ``column`` (time,)."""
    return column if column in PRICE_COLUMNS_KEPT else f"input_{column}"


def _kept_price_columns(prepared) -> list[str]:
    """Input columns stored with the fit: OHLC/volume present, plus spread and extra columns."""
    tr = prepared.transform
    wanted = [*PRICE_COLUMNS_KEPT]
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


def _portable(ds: xr.Dataset) -> xr.Dataset:
    """Drop variables netCDF cannot store (object dtypes other than strings)."""
    drop = [
        v for v, da in ds.variables.items()
        if da.dtype == object and not all(isinstance(x, str) for x in da.values.ravel()[:10])
    ]
    return ds.drop_vars(drop)
