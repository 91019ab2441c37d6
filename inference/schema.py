"""The fit file's schema: versions, groups, attributes, and every reader of a fit.

A fit is an ``xarray.DataTree`` written by :func:`stressflow.inference.fitting.fit.fit` and
stored as netCDF by :func:`save_fit`. This module is the one place that knows its layout:

groups
    ``posterior`` (per-draw parameters, ``filtered_last``), ``stages`` (posterior stage
    probabilities and their quantiles), ``log_likelihood`` (``y``: ``log p(y_t | y_1..y_{t-1},
    theta)``), ``sample_stats``, ``observed_data`` (the observables, the covariates and the price
    rows), and ``feed_state`` after :func:`stressflow.inference.apps.feed.update`.
root attributes
    ``schema_version``, ``stressflow_version``, ``model_spec`` (JSON of
    :meth:`stressflow.models.spec.ModelSpec.to_dict`), ``transform`` (JSON of the
    :class:`~stressflow.data.FeatureTransform`), ``data_report``, ``data_hash``, ``start``,
    ``end``, ``n_days``, ``source``, ``fit_options``, ``timings``, and ``em_start`` (JSON of
    :meth:`stressflow.inference.fitting.initialize.EMSearch.to_dict`: the distinct optima
    of the multi-start EM the chains started from; absent for ``init="kmeans"`` and for files
    written before it was stored, read with :func:`start_optima`).

Every "is this a fit?" check (:func:`require_fit`) and every reader of posterior draws
(:func:`posterior_params`) or of the stored data (:func:`model_arrays`, :func:`stored_prices`)
goes through here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference.integrity import (
    append_file_checksum,
    atomic_write,
    verify_file_checksum,
    verify_variables,
    with_checksums,
)
from stressflow.models import dims
from stressflow.models.evaluate import model_data, param_dims
from stressflow.models.spec import ModelSpec

__all__ = [
    "SCHEMA_VERSION", "READABLE_SCHEMA_VERSIONS", "PANEL_KIND", "is_panel", "STAGE_GROUPS",
    "PRICE_COLUMNS_KEPT", "price_variable", "save_fit", "load_fit", "require_fit",
    "schema_version", "read_spec",
    "read_transform", "posterior_params", "chain_of_draw", "model_arrays", "stored_prices",
    "filter_state", "time_index", "fit_data_end", "EM_START_ATTR", "start_optima",
]

#: Root attribute holding the EM start's optima (schema 3 files may lack it: older, or kmeans).
EM_START_ATTR = "em_start"


def start_optima(result) -> tuple[int, pd.DataFrame] | None:
    """``(n_starts, optima)`` of the EM start the chains began from
    (:class:`stressflow.inference.fitting.initialize.EMSearch`: one row per distinct optimum,
    best first, columns ``log_posterior``, ``n_starts`` and the share of days whose most
    probable stage at that optimum is each stage), or None where the fit stores none."""
    text = result.attrs.get(EM_START_ATTR)
    if not text:
        return None
    stored = json.loads(text)
    return int(stored["n_starts"]), pd.DataFrame(stored["optima"])

#: Layout version of the fit DataTree. 2 added the filter state ``posterior/filtered_last``,
#: ``stages/in_fit_window``, ``stages/filtered_margin_or_worse_quantile`` and the price rows in
#: ``observed_data``; 3 stores the model's components in ``model_spec``, labels ``mu_other``'s
#: dims and keeps the transition covariates (``observed_data/covariates``).
SCHEMA_VERSION = 3
#: Schema versions :func:`load_fit` reads (older files lack the feed's fields or covariates; the
#: functions that need them say so).
READABLE_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2, 3)
#: Groups of stages whose per-draw filtered probability ``Pr(stage_t in G | y_1..y_t, theta)``
#: gets its own quantiles across draws (``stages/filtered_<name>_quantile``).
STAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "margin_or_worse": dims.MARGIN_OR_WORSE,
}


def stage_group_indices(stage_names) -> dict[str, list[int]]:
    """Model indices of each group of :data:`STAGE_GROUPS` among ``stage_names``; a stage the
    model lacks (e.g. margin pressure with K < 4 stages) is left out of its group."""
    names = [str(k) for k in stage_names]
    return {group: [names.index(k) for k in members if k in names]
            for group, members in STAGE_GROUPS.items()}


#: Price columns kept in ``observed_data`` (when present) so that new rows can be turned into
#: observables with the same trailing windows; the spread and extra columns are kept too.
PRICE_COLUMNS_KEPT: tuple[str, ...] = ("open", "high", "low", "close", "volume")


def price_variable(column: str) -> str:
    """Name of the ``observed_data`` variable holding input column ``column`` (time,)."""
    return column if column in PRICE_COLUMNS_KEPT else f"input_{column}"


def save_fit(result: xr.DataTree, path: str | Path) -> Path:
    """Write a fit to a netCDF file (HDF5 via h5netcdf), atomically and with checksums.

    Design in :mod:`stressflow.inference.integrity`: every variable and every group's
    attributes get a SHA-256, and the file ends with the SHA-256 of its bytes; :func:`load_fit`
    checks the file's before it opens the HDF5 structure (damaged HDF5 metadata can make the
    reader fail obscurely or loop), then each variable's. The file is written to a temporary
    file in the same folder, synced and renamed onto ``path``: a writer killed midway leaves
    the old file, if any, intact. ``result`` is not modified.
    """
    if not isinstance(result, xr.DataTree) or "stages" not in result.children:
        raise TypeError("expected a stressflow fit (xarray.DataTree from fit() or load_fit())")
    path = Path(path)
    tree = with_checksums(result)
    with atomic_write(path) as tmp:
        tree.to_netcdf(tmp, engine="h5netcdf")
        append_file_checksum(tmp)
    return path


def load_fit(path: str | Path) -> xr.DataTree:
    """Read a fit written by :func:`save_fit` (loaded into memory, file closed).

    The stored arrays come back bit for bit; their checksums are verified. Raises
    ``ValueError`` with a message saying what to do if the file is not a stressflow fit (not
    netCDF/HDF5, or no ``schema_version`` / ``stages`` group), is damaged (unreadable, or a
    variable or attribute differs from its stored checksum: the message names it) or was
    written with a schema version this stressflow cannot read (:data:`READABLE_SCHEMA_VERSIONS`).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no fit file at {path}")
    verify_file_checksum(path)
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            result = tree.load()
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ValueError(
            f"{path} is not a stressflow fit, or is damaged: it cannot be read as netCDF/HDF5 "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    result = verify_variables(result, str(path))
    require_fit(result, where=str(path))
    return result


#: Root attribute ``model_kind`` of a panel (several assets) fit; a one-asset fit has none.
PANEL_KIND = "panel"


def is_panel(fit) -> bool:
    """Whether ``fit`` is a panel fit (:func:`stressflow.inference.fitting.panel_fit
    .fit_panel`): one stage per asset, dims ``time, asset, stage``."""
    return isinstance(fit, xr.DataTree) and fit.attrs.get("model_kind") == PANEL_KIND


def schema_version(fit: xr.DataTree, where: str = "this fit") -> int:
    """The fit's schema version; ``ValueError`` if it has none or one this version can't read."""
    if "schema_version" not in fit.attrs or "stages" not in fit.children:
        raise ValueError(f"{where} is not a stressflow fit (no schema_version / stages group)")
    try:
        schema = int(np.asarray(fit.attrs["schema_version"]).item())
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{where}: schema_version {fit.attrs['schema_version']!r} is not an integer; "
            "not a stressflow fit"
        ) from exc
    if schema not in READABLE_SCHEMA_VERSIONS:
        written = fit.attrs.get("stressflow_version", "an unknown version")
        raise ValueError(
            f"{where} was written with fit schema version {schema} (stressflow {written}); this "
            f"stressflow writes schema {SCHEMA_VERSION} and reads versions "
            f"{list(READABLE_SCHEMA_VERSIONS)}: read it with the stressflow version that wrote "
            "it, or refit"
        )
    return schema


def require_fit(fit, *, needs: dict[str, tuple[str, ...]] | None = None, purpose: str = "",
                where: str = "this fit") -> int:
    """Check that ``fit`` is a readable stressflow fit holding the variables ``needs``.

    Parameters
    ----------
    needs : dict of group name to variable names, optional
        Variables the caller reads, e.g. ``{"posterior": ("filtered_last",)}``.
    purpose : str
        What the caller does, for the error message (e.g. ``"the feed"``).

    Returns
    -------
    int
        The schema version.

    Raises
    ------
    TypeError
        If ``fit`` is not an ``xarray.DataTree``.
    ValueError
        Naming the missing group/variables and what to do.
    """
    if not isinstance(fit, xr.DataTree):
        raise TypeError("expected a stressflow fit (xarray.DataTree from fit() or load_fit()), "
                        f"got {type(fit).__name__}")
    schema = schema_version(fit, where)
    for group, names in (needs or {}).items():
        missing = [n for n in names if group not in fit.children or n not in fit[group]]
        if missing:
            what = f" which {purpose} needs" if purpose else ""
            raise ValueError(
                f"{where} (schema version {schema}) has no {group}/{', '.join(missing)},{what}; "
                "refit it with this stressflow"
            )
    return schema


def read_spec(fit: xr.DataTree) -> ModelSpec:
    """The fit's :class:`~stressflow.models.spec.ModelSpec` (older files: missing options take
    their defaults, which were the only choices then)."""
    return ModelSpec.from_dict(json.loads(fit.attrs.get("model_spec", "{}")))


def read_transform(fit: xr.DataTree):
    """The :class:`~stressflow.data.FeatureTransform` the fit's data were standardised with."""
    from stressflow.data import FeatureTransform

    return FeatureTransform.from_dict(json.loads(fit.attrs["transform"]))


def posterior_params(posterior, spec: ModelSpec) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """The parameters the model evaluator reads, flattened over ``(chain, draw)``.

    Parameters
    ----------
    posterior : xarray.Dataset or DataTree node
        A fit's ``posterior`` group (or a sampler's posterior dataset).

    Returns
    -------
    params : dict of str to ndarray
        For each name in :func:`stressflow.models.evaluate.param_names`, float64 C-contiguous
        draws of shape ``(C * D, *dims)`` in chain-major order, with the dims of
        :func:`stressflow.models.evaluate.param_dims`.
    shape : (C, D)
        Number of chains and draws per chain.
    """
    n_chains, n_draws = posterior.sizes[dims.CHAIN], posterior.sizes[dims.DRAW]
    out = {}
    for name, tail in param_dims(spec).items():
        if name not in posterior:
            raise ValueError(f"the posterior has no {name!r}, which the {spec.emission} / "
                             f"{spec.transition_model} model needs")
        da = posterior[name].transpose(dims.CHAIN, dims.DRAW, *tail)
        out[name] = np.ascontiguousarray(
            da.values.reshape((n_chains * n_draws, *da.shape[2:])), dtype=np.float64)
    return out, (n_chains, n_draws)


def chain_of_draw(shape: tuple[int, int]) -> np.ndarray:
    """Chain index of each flattened draw, for draws flattened as :func:`posterior_params`."""
    n_chains, n_draws = shape
    return np.repeat(np.arange(n_chains), n_draws)


def model_arrays(fit: xr.DataTree, spec: ModelSpec | None = None) -> dict[str, np.ndarray]:
    """The model's data arrays (:func:`stressflow.models.evaluate.model_data`) rebuilt from
    ``observed_data`` (the standardised features and, if any, covariates) of every stored day."""
    spec = spec or read_spec(fit)
    obs = fit["observed_data"]
    covariates = None
    if spec.time_varying:
        if "covariates" not in obs:
            raise ValueError("this fit stores no observed_data/covariates, which its "
                             "time-varying transition model needs")
        covariates = obs["covariates"].transpose(dims.TIME, dims.COVARIATE).values
    return model_data(spec, obs["features"].transpose(dims.TIME, dims.FEATURE).values,
                      covariates)


def stored_prices(fit: xr.DataTree) -> pd.DataFrame:
    """The validated input rows stored with the fit (index ``date``, float64 columns)."""
    obs = fit["observed_data"]
    kept = json.loads(obs.attrs.get("price_columns", "[]"))
    missing = [c for c in ("high", "low", "close", "volume") if c not in kept]
    if missing:
        raise ValueError(
            f"the fit stores no {missing} price rows (it was built from observables without "
            "prices, e.g. a PreparedData made by hand), so new observables cannot be computed; "
            "fit from a price file, DataFrame or dataset to use update()"
        )
    return pd.DataFrame(
        {c: obs[price_variable(c)].values.astype(np.float64) for c in kept},
        index=pd.DatetimeIndex(obs[dims.TIME].values, name="date"),
    )


def filter_state(fit: xr.DataTree) -> tuple[np.ndarray, pd.Timestamp]:
    """Per-draw ``Pr(stage_T = k | y_1..y_T, theta_s)``, shape (S, K), at the feed's last day
    T, and that day."""
    if "feed_state" in fit.children:
        da = fit["feed_state"]["filtered_last"]
    else:
        da = fit["posterior"]["filtered_last"]
    da = da.transpose(dims.CHAIN, dims.DRAW, dims.STAGE)
    state = da.values.reshape(-1, da.shape[-1]).astype(np.float64)
    return state, pd.Timestamp(da.attrs["date"])


def time_index(fit: xr.DataTree) -> pd.DatetimeIndex:
    """Every day of the fit's stage probabilities (the fitted days and any updated ones)."""
    return pd.DatetimeIndex(fit["stages"][dims.TIME].values, name=dims.TIME)


def fit_data_end(fit: xr.DataTree) -> pd.Timestamp:
    """Last date of the data the parameters were fitted to."""
    if "end" in fit.attrs:
        return pd.Timestamp(str(fit.attrs["end"]))
    in_fit = fit["stages"]["in_fit_window"].values.astype(bool)
    return time_index(fit)[in_fit][-1]
