"""Fit the stage HMM (by default the five stages of ``ModelSpec()``) with NUTS and return a
labelled ArviZ DataTree.

The returned ``xarray.DataTree`` (ArviZ 1.x's container) holds:

``posterior``
    ``mu`` (chain, draw, stage, feature), ``sigma`` (chain, draw, stage, feature),
    ``P`` (chain, draw, stage_from, stage_to) with ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``,
    ``expected_duration`` (chain, draw, stage) ``= 1 / (1 - P[k, k])`` trading days, ``nu``
    (Student-t only), for covariate-driven transitions ``gamma`` (chain, draw, covariate;
    ladder) or ``beta`` (chain, draw, covariate, stage_from, stage_to; logit), with ``P`` and
    ``expected_duration`` then taken at every covariate's fit-window mean (z = 0),
    ``filtered_last`` (chain, draw, stage) ``= Pr(stage_T = k | y_1..y_T,
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
    (``input_<name>``), the validated rows listed in the attribute ``price_columns``; for
    covariate-driven transitions ``covariates`` (time, covariate), the standardised ``z_t``
    (day t-1's row drives the move into day t), and ``raw_covariates``.

Root attributes carry the package and schema versions, the model options, the feature
transform, the data report, a hash of the data, the date range and the timings.
"""

from __future__ import annotations

import json
import time
import warnings

import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.fitting.assemble import assemble, data_hash, package_version
from stressflow.inference.fitting.sampling import (
    ADAPTATIONS,
    SAMPLERS,
    clear_compile_cache,
    sample_nutpie,
    sample_pymc,
)
from stressflow.inference.postprocess.diagnostics import FitWarning, check_fit
from stressflow.models import dims
from stressflow.models.messages import require_int, shown
from stressflow.models.pymc_model import build_model
from stressflow.models.spec import ModelSpec

__all__ = ["fit", "FitWarning", "SAMPLERS", "ADAPTATIONS", "clear_compile_cache",
           "prepare_options"]


def prepare_options(spec: ModelSpec) -> dict:
    """The :func:`stressflow.data.prepare` options a fit of ``spec`` needs from raw data: its
    observables beyond the built-in four and, with a time-varying P, its transition
    covariates (options the caller passes to :func:`fit` take precedence)."""
    options = {}
    if spec.time_varying:
        options["transition_covariates"] = spec.transition_covariates
    if spec.observables:
        options["observables"] = spec.observables
    return options


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
    cores: int | None = None,
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
        Emission family, transition structure and model (constant or covariate-driven P),
        priors. With ``transition_covariates`` the covariates are prepared from the bundled
        series (or ``covariate_data=`` / columns of the input, passed through to
        :func:`stressflow.data.prepare`).
    chains, draws, tune : int
        NUTS chains, kept draws and tuning iterations per chain. The default tuning is long
        (2000) because the slowest direction of real-data posteriors (the volume scale of the
        calm stages) needs it; the measurements behind the choice are in the README.
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
        to the diagonal mass matrix (more effective samples per second on the standard fit:
        README, Performance). Ignored by ``sampler="pymc"``.
    sampler : {"nutpie", "pymc"}
        ``"nutpie"`` (default, the fastest: README, Performance) compiles the log density
        with numba; ``"pymc"`` uses PyMC's own NUTS.
    quantiles : tuple of float
        Quantiles across draws reported beside the posterior-mean probabilities.
    max_quantile_draws : int
        At most this many (evenly thinned) draws enter the quantiles; means use every draw.
    store_draws : bool
        Also store per-draw ``filtered_prob`` and ``smoothed_prob`` (chain, draw, time, stage)
        in the posterior (memory: 8 bytes x draws x days x 4).
    pointwise_loglik : bool
        Store the ``log_likelihood`` group.
    cores : int, optional
        Chains sampled at once (threads); default one per chain up to the CPU count. Set 1
        when several fits share the machine (e.g. :func:`stressflow.inference.apps.many
        .fit_many` workers). Each chain has its own seed, so it does not change the draws.
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

    if spec is not None and not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec (e.g. ModelSpec() or ModelSpec.base()) or "
                        f"None, got {shown(spec)}")
    spec = spec or ModelSpec()
    seed = require_int("seed", seed, 0)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if init not in ("em", "kmeans"):
        raise ValueError(f"init must be 'em' or 'kmeans', got {init!r}")
    if adaptation not in ADAPTATIONS:
        raise ValueError(f"adaptation must be one of {ADAPTATIONS}, got {adaptation!r}")
    cores = require_int("cores", cores, 1, allow_none=True)
    chains, draws, tune = (require_int("chains", chains, 1), require_int("draws", draws, 1),
                           require_int("tune", tune, 0))
    if isinstance(data, PreparedData):
        if start is not None or end is not None or prepare_kwargs:
            raise ValueError("start/end and data options apply when preparing: pass raw data")
        prepared = data
    else:
        prepare_kwargs = {**prepare_options(spec), **prepare_kwargs}
        prepared = prepare(data, start=start, end=end, **prepare_kwargs)
    features = prepared.features
    missing = [name for name in spec.observables if name not in features.columns]
    if missing:
        raise ValueError(f"the model uses the observables {missing}, which the prepared data "
                         f"lack (features {list(features.columns)}): prepare them with "
                         f"prepare(..., observables={list(spec.observables)})")
    covariates = _covariates(prepared, spec)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    from stressflow.inference.fitting.initialize import em_search, kmeans_start

    search = em_search(features, spec, seed) if init == "em" else None
    start_point = search.start if search is not None else kmeans_start(features, spec, seed)
    model = build_model(features, spec, covariates)
    timings["build"] = time.perf_counter() - t0
    sample = sample_nutpie if sampler == "nutpie" else sample_pymc
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="pytensor")
        trace, timings["sampling"], compile_source = sample(
            model, start_point, chains=chains, draws=draws, tune=tune, seed=seed,
            progress_bar=progress_bar, target_accept=target_accept,
            cache_key=json.dumps([spec.to_dict(), [str(c) for c in features.columns]]),
            adaptation=adaptation, cores=cores,
        )
    timings["compile"] = time.perf_counter() - t0 - timings["sampling"]
    # 1.0 where this process had compiled the same graph already (reused with new data)
    timings["compile_cached"] = float(compile_source == "memory")
    # 1.0 where the compiled log density came from the persistent on-disk cache
    timings["compile_disk"] = float(compile_source == "disk")

    t0 = time.perf_counter()
    result = assemble(
        trace, prepared, spec, quantiles=quantiles, max_quantile_draws=max_quantile_draws,
        store_draws=store_draws, pointwise_loglik=pointwise_loglik,
    )
    timings["postprocess"] = time.perf_counter() - t0
    result.attrs.update(
        {
            "stressflow_version": package_version(),
            "schema_version": schema.SCHEMA_VERSION,
            "created": pd.Timestamp.now(tz="UTC").isoformat(),
            "data_hash": data_hash(features),
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
    if search is not None:
        result.attrs[schema.EM_START_ATTR] = json.dumps(search.to_dict())
    check_fit(result, warn=True)
    return result


def _covariates(prepared, spec: ModelSpec) -> pd.DataFrame | None:
    """The standardised transition covariates of ``prepared`` the spec names (None if none)."""
    if not spec.time_varying:
        return None
    covs = getattr(prepared, "covariates", None)
    missing = [c for c in spec.transition_covariates
               if covs is None or c not in covs.columns]
    if missing:
        raise ValueError(
            f"the data have no transition covariates {missing}: prepare them with "
            f"prepare(..., transition_covariates={list(spec.transition_covariates)})"
        )
    return covs[list(spec.transition_covariates)]


def _source_name(data) -> str:
    """What the fit was given: a bundled dataset name or a file path ("" for a DataFrame)."""
    from pathlib import Path

    if isinstance(data, str | Path):
        return str(data)
    return ""


