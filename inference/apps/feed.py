"""Stage probabilities for downstream risk models: a causal feed, updated without refitting.

A risk model may only use, at date t, information available at t. The smoothed probabilities
``Pr(stage_t = k | y_1..y_T)`` of a fit use the whole sample (the future included) and leak it
into any backtest; this module serves the *filtered* probabilities instead.

- :func:`feed`: one row per date (the schema :data:`FEED_SCHEMA`, version
  :data:`FEED_SCHEMA_VERSION`): ``Pr(stage_t = k | y_1..y_t)`` integrated over the parameter
  posterior with 5%/95% quantiles across draws, ``p_compulsion_t = Pr(stage_t = forced_flow |
  y_1..y_t)`` and ``p_margin_or_worse_t = Pr(stage_t in {margin_pressure, forced_flow} |
  y_1..y_t)`` with their intervals, the fit's smoothed probabilities in separate ``smoothed_*``
  columns, and the data-availability flags.
- :func:`update`: extends a fit to new days with the stored posterior draws, the stored filter
  state (``Pr(stage_T = k | y_1..y_T, theta_s)`` per draw) and the stored feature transform and
  price rows, in time proportional to the number of new days. The result equals filtering the
  whole series from the start with the same draws, and the new observables equal those
  :func:`stressflow.data.prepare` computes on the whole series. Nothing stored is rewritten:
  new days get filtered values only (smoothed NaN, ``in_fit_window`` False).
- :func:`forecast`: ``Pr(stage_{T+h} = k | y_1..y_T)`` for h = 1..H and the first-passage
  probability ``Pr(stage_{T+j} = forced_flow for some j = 1..h | y_1..y_T)``.
- :func:`export`: the feed as CSV or Parquet with its schema metadata.

Look-ahead, stated precisely: the filtered probability at t uses observations up to t, but on
days inside the fit window the parameter posterior was estimated from data up to the fit's
end (``fit_data_end``). Days after ``fit_data_end`` are out of sample in both respects; a
rolling evaluation that is out of sample throughout is :func:`stressflow.inference.apps.backtest
.backtest`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.data import DataError, DataWarning, FeatureTransform, prepare, read_prices
from stressflow.data.errors import format_dates
from stressflow.inference.fitting.fit import (
    READABLE_SCHEMA_VERSIONS,
    STAGE_GROUPS,
    _data_hash,
    _package_version,
    price_variable,
)
from stressflow.inference.postprocess.stages import filter_forward
from stressflow.models import dims
from stressflow.models.emissions import masked_observations

__all__ = [
    "FEED_SCHEMA",
    "FEED_SCHEMA_VERSION",
    "FeedColumn",
    "export",
    "feed",
    "forecast",
    "read_feed",
    "register_cli",
    "update",
]

#: Version of :data:`FEED_SCHEMA`. Any change of a column's name, dtype, meaning or order
#: increments it; consumers should check it (Parquet metadata / the CSV's ``.meta.json``).
FEED_SCHEMA_VERSION = 1

#: Stage whose filtered probability is ``p_compulsion``.
COMPULSION_STAGE = "forced_flow"
#: Stages summed in ``p_margin_or_worse``.
MARGIN_OR_WORSE = STAGE_GROUPS["margin_or_worse"]
#: Quantile levels of the interval columns (``_q05``, ``_q95``).
INTERVAL = (0.05, 0.95)


class FeedColumn(NamedTuple):
    """One column of the feed: its name, its dtype (numpy/pandas spelling) and its meaning."""

    name: str
    dtype: str
    meaning: str


def _schema() -> tuple[FeedColumn, ...]:
    post = "posterior mean over parameter draws"
    q = "quantile across parameter draws of Pr({what} | y_1..y_t, theta)"
    cols = [FeedColumn("date", "datetime64[ns]", "trading date t (one row per date)")]
    for k in dims.STAGES:
        cols.append(FeedColumn(f"filtered_{k}", "float64", f"Pr(stage_t = {k} | y_1..y_t), {post}"))
    for k in dims.STAGES:
        for level in INTERVAL:
            cols.append(FeedColumn(
                f"filtered_{k}_q{round(100 * level):02d}", "float64",
                f"{level:.0%} " + q.format(what=f"stage_t = {k}"),
            ))
    cols.append(FeedColumn(
        "p_compulsion", "float64", f"Pr(stage_t = {COMPULSION_STAGE} | y_1..y_t), {post}"
    ))
    for level in INTERVAL:
        cols.append(FeedColumn(
            f"p_compulsion_q{round(100 * level):02d}", "float64",
            f"{level:.0%} " + q.format(what=f"stage_t = {COMPULSION_STAGE}"),
        ))
    group = "{" + ", ".join(MARGIN_OR_WORSE) + "}"
    cols.append(FeedColumn(
        "p_margin_or_worse", "float64", f"Pr(stage_t in {group} | y_1..y_t), {post}"
    ))
    for level in INTERVAL:
        cols.append(FeedColumn(
            f"p_margin_or_worse_q{round(100 * level):02d}", "float64",
            f"{level:.0%} " + q.format(what=f"stage_t in {group}"),
        ))
    for k in dims.STAGES:
        cols.append(FeedColumn(
            f"smoothed_{k}", "float64",
            f"Pr(stage_t = {k} | y_1..y_T) over the fit window (uses future data: describing "
            f"the past only, never for a backtest), {post}; NaN for days after the fit window",
        ))
    cols += [
        FeedColumn("in_fit_window", "bool",
                   "True if the day is in the data the parameters were fitted to (smoothed "
                   "values exist); False for days added by update"),
        FeedColumn("n_observed", "int64",
                   "number of observables present on day t (0 = nothing observed, e.g. a "
                   "zero-volume holiday row; the filter then only propagates the stages)"),
        FeedColumn("observed", "bool",
                   "True if at least one observable is present on day t (n_observed > 0)"),
        FeedColumn("fit_data_end", "datetime64[ns]",
                   "last date of the data the parameter posterior was fitted to; days after it "
                   "are out of sample"),
    ]
    return tuple(cols)


#: The feed's columns in order (see :class:`FeedColumn`); version :data:`FEED_SCHEMA_VERSION`.
FEED_SCHEMA: tuple[FeedColumn, ...] = _schema()


# --------------------------------------------------------------------------------------------
# reading a fit
# --------------------------------------------------------------------------------------------


def _require_feed_layout(fit: xr.DataTree) -> None:
    """Raise ValueError unless ``fit`` holds what the feed needs (schema 2 or later)."""
    if not isinstance(fit, xr.DataTree) or "stages" not in fit.children:
        raise TypeError("expected a stressflow fit (xarray.DataTree from fit() or load_fit())")
    schema = int(np.asarray(fit.attrs.get("schema_version", -1)).item())
    if schema not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(
            f"fit schema version {schema} is not readable by this stressflow "
            f"(reads {list(READABLE_SCHEMA_VERSIONS)})"
        )
    needed = {
        "posterior": ("filtered_last", "mu", "sigma", "P"),
        "stages": ("filtered", "filtered_quantile", "in_fit_window",
                   "filtered_margin_or_worse_quantile"),
    }
    for group, names in needed.items():
        missing = [n for n in names if group not in fit.children or n not in fit[group]]
        if missing:
            raise ValueError(
                f"this fit (schema version {schema}) has no {group}/{', '.join(missing)}, which "
                "the feed needs (the filter state and stage-group quantiles were added in "
                "schema 2); refit it with this stressflow"
            )


def _posterior_draws(fit: xr.DataTree):
    """``(mu, sigma, log_trans, nu, (C, D))`` stacked over draws: (S, K, F), (S, K, F),
    (S, K, K), (S, K) or None."""
    post = fit["posterior"]
    n_chains, n_draws = post.sizes[dims.CHAIN], post.sizes[dims.DRAW]

    def stacked(name, tail):
        da = post[name].transpose(dims.CHAIN, dims.DRAW, *tail)
        return np.ascontiguousarray(da.values.reshape((n_chains * n_draws, *da.shape[2:])),
                                    dtype=np.float64)

    mu = stacked("mu", (dims.STAGE, dims.FEATURE))
    sigma = stacked("sigma", (dims.STAGE, dims.FEATURE))
    trans = stacked("P", (dims.STAGE_FROM, dims.STAGE_TO))
    nu = stacked("nu", (dims.STAGE,)) if "nu" in post else None
    with np.errstate(divide="ignore"):
        log_trans = np.log(trans)
    return mu, sigma, log_trans, nu, (n_chains, n_draws)


def _filter_state(fit: xr.DataTree) -> tuple[np.ndarray, pd.Timestamp]:
    """Per-draw ``Pr(stage_T = k | y_1..y_T, theta_s)`` (S, K) at the feed's last day T."""
    if "feed_state" in fit.children:
        da = fit["feed_state"]["filtered_last"]
    else:
        da = fit["posterior"]["filtered_last"]
    da = da.transpose(dims.CHAIN, dims.DRAW, dims.STAGE)
    state = da.values.reshape(-1, da.shape[-1]).astype(np.float64)
    return state, pd.Timestamp(da.attrs["date"])


def _time_index(fit: xr.DataTree) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(fit["stages"][dims.TIME].values, name=dims.TIME)


def _fit_data_end(fit: xr.DataTree) -> pd.Timestamp:
    """Last date of the data the parameters were fitted to."""
    if "end" in fit.attrs:
        return pd.Timestamp(str(fit.attrs["end"]))
    in_fit = fit["stages"]["in_fit_window"].values.astype(bool)
    return _time_index(fit)[in_fit][-1]


def _quantile_position(levels: np.ndarray, level: float) -> int:
    hits = np.flatnonzero(np.isclose(levels, level, rtol=0, atol=1e-9))
    if not hits.size:
        raise ValueError(
            f"the fit's quantiles {list(map(float, levels))} do not include {level}, which the "
            f"feed's interval columns need; refit with quantiles containing {INTERVAL}"
        )
    return int(hits[0])


def _stored_prices(fit: xr.DataTree) -> pd.DataFrame:
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
    frame = pd.DataFrame(
        {c: obs[price_variable(c)].values.astype(np.float64) for c in kept},
        index=pd.DatetimeIndex(obs[dims.TIME].values, name="date"),
    )
    return frame


# --------------------------------------------------------------------------------------------
# the feed
# --------------------------------------------------------------------------------------------


def feed(fit: xr.DataTree) -> pd.DataFrame:
    """The risk feed: one row per date with the columns of :data:`FEED_SCHEMA`, in order.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit from :func:`stressflow.inference.fitting.fit`, :func:`update` or
        :func:`stressflow.inference.load_fit` (schema version 2).

    Returns
    -------
    pandas.DataFrame, shape (T, len(FEED_SCHEMA))
        Row t (RangeIndex; the ``date`` column is the trading date) holds
        ``filtered_<k> = Pr(stage_t = k | y_1..y_t)`` for the four stages (posterior means)
        with their 5%/95% quantiles across draws; ``p_compulsion = Pr(stage_t = forced_flow |
        y_1..y_t)`` and ``p_margin_or_worse = Pr(stage_t in {margin_pressure, forced_flow} |
        y_1..y_t)`` with their quantiles (the latter computed from per-draw sums);
        ``smoothed_<k> = Pr(stage_t = k | y_1..y_T)`` (NaN after the fit window);
        ``in_fit_window``, ``n_observed``, ``observed`` and ``fit_data_end``. Dtypes are those
        of the schema. The fit is not modified.
    """
    _require_feed_layout(fit)
    st = fit["stages"]
    index = _time_index(fit)
    levels = np.asarray(st[dims.QUANTILE].values, dtype=np.float64)
    qpos = [_quantile_position(levels, level) for level in INTERVAL]
    filtered = st["filtered"].transpose(dims.TIME, dims.STAGE).values.astype(np.float64)
    fq = st["filtered_quantile"].transpose(dims.QUANTILE, dims.TIME, dims.STAGE).values
    gq = st["filtered_margin_or_worse_quantile"].transpose(dims.QUANTILE, dims.TIME).values
    smoothed = st["smoothed"].transpose(dims.TIME, dims.STAGE).values.astype(np.float64)
    in_fit = st["in_fit_window"].values.astype(bool)
    smoothed = np.where(in_fit[:, None], smoothed, np.nan)
    n_obs = st["observed"].values.astype(np.int64)
    f_idx = dims.STAGES.index(COMPULSION_STAGE)
    g_idx = [dims.STAGES.index(k) for k in MARGIN_OR_WORSE]
    suffix = [f"q{round(100 * level):02d}" for level in INTERVAL]

    cols: dict[str, np.ndarray] = {"date": index.values}
    for j, k in enumerate(dims.STAGES):
        cols[f"filtered_{k}"] = filtered[:, j]
    for j, k in enumerate(dims.STAGES):
        for p, s in zip(qpos, suffix, strict=True):
            cols[f"filtered_{k}_{s}"] = fq[p, :, j]
    cols["p_compulsion"] = filtered[:, f_idx]
    for p, s in zip(qpos, suffix, strict=True):
        cols[f"p_compulsion_{s}"] = fq[p, :, f_idx]
    cols["p_margin_or_worse"] = filtered[:, g_idx].sum(axis=1)
    for p, s in zip(qpos, suffix, strict=True):
        cols[f"p_margin_or_worse_{s}"] = gq[p]
    for j, k in enumerate(dims.STAGES):
        cols[f"smoothed_{k}"] = smoothed[:, j]
    cols["in_fit_window"] = in_fit
    cols["n_observed"] = n_obs
    cols["observed"] = n_obs > 0
    cols["fit_data_end"] = np.full(len(index), _fit_data_end(fit).to_datetime64())
    return _conform(pd.DataFrame(cols))


def _conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of :data:`FEED_SCHEMA`, in order, cast to the schema's dtypes."""
    names = [c.name for c in FEED_SCHEMA]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"feed frame lacks column(s) {missing}")
    out = frame[names].copy()
    for col in FEED_SCHEMA:
        out[col.name] = out[col.name].astype(col.dtype)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# update without refitting
# --------------------------------------------------------------------------------------------


def _history_rows(stored: pd.DataFrame, tr: FeatureTransform) -> pd.DataFrame:
    """The stored rows the trailing windows of the next day need (counted in trading rows)."""
    need = max(tr.impact_window + 1, tr.volume_window, tr.spread_window)
    traded = (stored["volume"] != 0).to_numpy()
    counted = np.cumsum(traded[::-1])
    if counted[-1] < need:
        import warnings

        warnings.warn(
            f"the fit stores {int(counted[-1])} trading rows, fewer than the {need} the trailing "
            f"windows need (impact {tr.impact_window} + 1, volume {tr.volume_window}, spread "
            f"{tr.spread_window}); the first new days' observables use that shorter history, "
            "so they can differ from prepare() on the whole series. Fit on a window of at "
            "least a year to avoid this",
            DataWarning,
            stacklevel=3,
        )
        return stored
    first = len(stored) - (int(np.argmax(counted >= need)) + 1)
    return stored.iloc[first:]


def _missing_like(values: np.ndarray, axis: int, n: int) -> np.ndarray:
    """An array like ``values`` with ``n`` entries along ``axis``, all "not computed"."""
    shape = list(values.shape)
    shape[axis] = n
    kind = values.dtype.kind
    if kind in "fc":
        return np.full(shape, np.nan, dtype=values.dtype)
    if kind == "b":
        return np.zeros(shape, dtype=bool)
    if kind in "USO":
        return np.full(shape, "", dtype=values.dtype if kind != "O" else object)
    if kind in "iu":
        return np.zeros(shape, dtype=values.dtype)
    raise TypeError(f"cannot extend a variable of dtype {values.dtype}")


def _extend(ds: xr.Dataset, new_index: pd.DatetimeIndex, computed: dict) -> xr.Dataset:
    """``ds`` with ``new_index`` appended along time.

    ``computed[name] = (dim names, array)`` gives the new days' values of a variable; every
    other variable with a time dim gets "not computed" values (NaN, "", False, 0).
    """
    unknown = set(computed) - set(ds.data_vars)
    if unknown:
        raise KeyError(f"internal: {sorted(unknown)} not variables of the group")
    out = {}
    for name, da in ds.data_vars.items():
        if dims.TIME not in da.dims:
            out[name] = da.variable.copy(deep=False)
            continue
        axis = da.dims.index(dims.TIME)
        if name in computed:
            var_dims, values = computed[name]
            add = xr.Variable(var_dims, np.asarray(values)).transpose(*da.dims).values
            add = add.astype(da.dtype, copy=False)
        else:
            add = _missing_like(da.values, axis, len(new_index))
        values = np.concatenate([da.values, add], axis=axis)
        out[name] = xr.Variable(da.dims, values, attrs=dict(da.attrs))
    coords = {k: v for k, v in ds.coords.items() if k != dims.TIME}
    coords[dims.TIME] = pd.DatetimeIndex(
        np.concatenate([ds[dims.TIME].values, new_index.values]), name=dims.TIME
    )
    return xr.Dataset(out, coords=coords, attrs=dict(ds.attrs))


def update(fit: xr.DataTree, new_rows, *, columns=None, date_column: str = "date") -> xr.DataTree:
    """Extend a fit's filtered probabilities to new days without refitting.

    For every posterior draw theta_s the forward filter continues from the stored state
    ``Pr(stage_T = k | y_1..y_T, theta_s)`` (``posterior/filtered_last``, or ``feed_state``
    after an earlier update) through the new days, so the new day t gets
    ``Pr(stage_t = k | y_1..y_t)`` averaged over the posterior, exactly as filtering the whole
    series from the start with the same draws would give. The new rows are validated like
    fitting data (:func:`stressflow.data.read_prices`, :func:`stressflow.data.prepare`) and
    turned into observables with the fit's stored transform and its stored last price rows,
    which cover the trailing windows, so the observables equal those of ``prepare`` on the
    whole series. Cost: O(S n K^2) for n new days and S draws (plus the trailing-window rows),
    independent of the length of the history.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit (schema 2) or the result of an earlier update. Not modified.
    new_rows : str, path-like or pandas.DataFrame
        Daily rows dated strictly after the fit's last date, with the columns the fit used
        (``high, low, close, volume``, and the spread / extra columns if any).
    columns, date_column
        As in :func:`stressflow.data.read_prices`.

    Returns
    -------
    xarray.DataTree
        A new tree: the fit's groups unchanged except ``stages`` and ``observed_data``, which
        get the new days appended along ``time`` (``filtered``, ``filtered_quantile``,
        ``filtered_margin_or_worse_quantile``, ``observed`` computed; ``smoothed*`` NaN,
        ``viterbi`` empty, ``in_fit_window`` False); a group ``feed_state`` with
        ``filtered_last`` (chain, draw, stage) ``= Pr(stage_{T+n} = k | y_1..y_{T+n},
        theta_s)``; root attributes ``feed_end``, ``feed_n_days``, ``feed_data_hash``,
        ``feed_updates`` and ``feed_last_update`` added (the fit's own attributes, including
        ``start``/``end`` of the fit window and ``data_hash``, are kept as they were).

    Raises
    ------
    DataError
        Invalid rows (as for fitting data: the message names the column and date); rows dated
        on or before the fit's last date (the message lists them); no rows; a column the fit
        used is absent.
    ValueError
        The fit lacks the stored state or price rows (schema 1, or built without prices).
    """
    _require_feed_layout(fit)
    t0 = time.perf_counter()
    tr = FeatureTransform.from_dict(json.loads(fit.attrs["transform"]))
    stored = _stored_prices(fit)
    last = _time_index(fit)[-1]
    new = read_prices(new_rows, columns=columns, date_column=date_column)
    if len(new) == 0:
        raise DataError("no new rows to add")
    late = new.index[new.index <= last]
    if len(late):
        raise DataError(
            f"{len(late)} new row(s) dated on or before the last stored date "
            f"{last:%Y-%m-%d}: {format_dates(late)}; update only appends days after it (stored "
            "days are never rewritten: refit to change them)"
        )
    extras = [f for f in tr.features if f not in dims.FEATURES]
    needed = [*([tr.spread_column] if tr.spread_column else []), *extras]
    absent = [c for c in needed if c not in new.columns]
    if absent:
        raise DataError(
            f"new rows lack the column(s) {absent} the fit used (spread / extra columns); "
            f"available: {list(new.columns)}"
        )
    kept = list(stored.columns)
    history = _history_rows(stored, tr)
    combined = pd.concat([history, new[[c for c in kept if c in new.columns]]])
    combined.index.name = "date"
    # The window starts at the last stored day (prepare needs >= 2 rows); that day's
    # observables are recomputed here only to be dropped: the stored ones are kept.
    prep = prepare(
        combined, start=history.index[-1], transform=tr, spread_column=tr.spread_column,
        extra_columns=extras, min_rows=2,
    )
    new_features = prep.features.iloc[1:]
    new_raw = prep.raw.iloc[1:]
    new_prices = prep.prices.iloc[1:]
    if not new_features.index.equals(pd.DatetimeIndex(new.index, name=dims.TIME)):
        raise RuntimeError("internal: prepared dates differ from the new rows' dates")

    mu, sigma, log_trans, nu, (n_chains, n_draws) = _posterior_draws(fit)
    state, state_date = _filter_state(fit)
    if state_date != last:
        raise ValueError(
            f"the stored filter state is dated {state_date:%Y-%m-%d} but the last stored day is "
            f"{last:%Y-%m-%d}; the fit file is inconsistent"
        )
    st = fit["stages"]
    levels = tuple(float(q) for q in st[dims.QUANTILE].values)
    options = json.loads(fit.attrs.get("fit_options", "{}"))
    y0, mask = masked_observations(new_features.to_numpy(dtype=np.float64))
    res = filter_forward(
        y0, mask, mu, sigma, log_trans, state, nu=nu, quantiles=levels,
        max_quantile_draws=int(options.get("max_quantile_draws", 1000)),
        filtered_groups={g: [dims.STAGES.index(k) for k in members]
                         for g, members in STAGE_GROUPS.items()},
    )

    new_index = pd.DatetimeIndex(new_features.index, name=dims.TIME)
    n_new = len(new_index)
    time_stage = (dims.TIME, dims.STAGE)
    computed_stages = {
        "filtered": (time_stage, res.filtered_mean),
        "filtered_quantile": ((dims.QUANTILE, *time_stage), res.filtered_q),
        "observed": ((dims.TIME,), mask.sum(axis=1)),
        "in_fit_window": ((dims.TIME,), np.zeros(n_new, dtype=bool)),
    }
    for g in STAGE_GROUPS:
        computed_stages[f"filtered_{g}_quantile"] = (
            (dims.QUANTILE, dims.TIME), res.filtered_group_q[g]
        )
    new_stages = _extend(st.to_dataset(), new_index, computed_stages)

    obs = fit["observed_data"].to_dataset()
    time_feature = (dims.TIME, dims.FEATURE)
    computed_obs = {
        "features": (time_feature, new_features.to_numpy(dtype=np.float64)),
        "raw_features": (time_feature, new_raw.to_numpy(dtype=np.float64)),
    }
    for c in kept:
        computed_obs[price_variable(c)] = ((dims.TIME,), new_prices[c].to_numpy(np.float64))
    if list(obs[dims.FEATURE].values) != list(new_features.columns):
        raise ValueError(
            f"stored features {list(obs[dims.FEATURE].values)} differ from the transform's "
            f"{list(new_features.columns)}"
        )
    new_obs = _extend(obs, new_index, computed_obs)

    post = fit["posterior"]
    state_ds = xr.Dataset(
        {"filtered_last": ((dims.CHAIN, dims.DRAW, dims.STAGE),
                           res.filtered_last.reshape(n_chains, n_draws, -1))},
        coords={dims.CHAIN: post[dims.CHAIN].values, dims.DRAW: post[dims.DRAW].values,
                dims.STAGE: list(dims.STAGES)},
    )
    state_ds["filtered_last"].attrs.update({
        "long_name": "Pr(stage_T = k | y_1..y_T, theta) per draw at the feed's last day T (the "
                     "filter state the next update continues)",
        "date": str(new_index[-1].date()),
    })

    groups: dict[str, xr.Dataset] = {}
    for name, node in fit.children.items():
        groups[name] = node.to_dataset().copy(deep=False)
    groups["stages"] = new_stages
    groups["observed_data"] = new_obs
    groups["feed_state"] = state_ds
    attrs = dict(fit.attrs)
    all_features = new_obs["features"].transpose(dims.TIME, dims.FEATURE).to_pandas()
    attrs.update({
        "feed_end": str(new_index[-1].date()),
        "feed_n_days": int(new_stages.sizes[dims.TIME]),
        "feed_data_hash": _data_hash(all_features),
        "feed_updates": int(attrs.get("feed_updates", 0)) + 1,
        "feed_last_update": json.dumps({
            "first": str(new_index[0].date()), "last": str(new_index[-1].date()),
            "n_days": n_new, "data_hash": _data_hash(new_features),
            "stressflow_version": _package_version(),
            "seconds": round(time.perf_counter() - t0, 6),
        }),
    })
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **groups})
    return tree


# --------------------------------------------------------------------------------------------
# forecasts
# --------------------------------------------------------------------------------------------


def forecast(
    fit: xr.DataTree,
    horizon: int,
    *,
    target: str = COMPULSION_STAGE,
    quantiles: tuple[float, ...] = INTERVAL,
) -> pd.DataFrame:
    """h-step-ahead stage probabilities and the probability of reaching a stage within h days.

    With the per-draw filter state ``a_s = Pr(stage_T = . | y_1..y_T, theta_s)`` at the feed's
    last day T and transition matrix ``P_s``:

    - ``Pr(stage_{T+h} = k | y_1..y_T, theta_s) = (a_s P_s^h)[k]``;
    - ``Pr(stage_{T+j} = target for some j = 1..h | y_1..y_T, theta_s) = (a_s P_s Q_s^{h-1})
      [target]``, where ``Q_s`` is ``P_s`` with ``target`` made absorbing (its row replaced by
      the unit vector): exact first passage, non-decreasing in h. Being in ``target`` at T
      does not count; being there at T+1 does.

    Both are averaged over the posterior draws (``Pr(. | y_1..y_T)``) and summarised by their
    quantiles across draws.

    Parameters
    ----------
    fit : xarray.DataTree
        A fit or updated fit (schema 2).
    horizon : int
        H >= 1, in trading days.
    target : str
        Stage of the first-passage probability (default ``forced_flow``).
    quantiles : tuple of float
        Quantile levels across draws (default 5% and 95%).

    Returns
    -------
    pandas.DataFrame, shape (H, 4 (1 + Q) + 1 + Q)
        Index ``horizon`` (h = 1..H). Columns: for each stage k, ``k`` (the posterior mean of
        ``Pr(stage_{T+h} = k | y_1..y_T)``; the four sum to 1) and ``k_qNN`` (quantiles);
        ``p_enter_<target>`` and its ``_qNN`` quantiles. ``attrs["origin"]`` is the date T.
    """
    _require_feed_layout(fit)
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    if target not in dims.STAGES:
        raise ValueError(f"target must be one of {dims.STAGES}, got {target!r}")
    _, _, log_trans, _, _ = _posterior_draws(fit)
    trans = np.exp(log_trans)
    state, origin = _filter_state(fit)
    k_t = dims.STAGES.index(target)
    absorbing = trans.copy()
    absorbing[:, k_t, :] = 0.0
    absorbing[:, k_t, k_t] = 1.0
    n_draws, n_stages = state.shape
    marg = np.empty((n_draws, horizon, n_stages))
    hit = np.empty((n_draws, horizon))
    v = state
    w = None
    for h in range(horizon):
        v = np.einsum("si,sij->sj", v, trans)
        w = v.copy() if h == 0 else np.einsum("si,sij->sj", w, absorbing)
        marg[:, h] = v
        hit[:, h] = w[:, k_t]
    q = np.asarray(quantiles, dtype=np.float64)
    names = [f"q{round(100 * x):02d}" for x in q]
    cols: dict[str, np.ndarray] = {}
    mq = np.quantile(marg, q, axis=0)
    for j, k in enumerate(dims.STAGES):
        cols[k] = marg[:, :, j].mean(axis=0)
        for i, n in enumerate(names):
            cols[f"{k}_{n}"] = mq[i, :, j]
    hq = np.quantile(hit, q, axis=0)
    cols[f"p_enter_{target}"] = hit.mean(axis=0)
    for i, n in enumerate(names):
        cols[f"p_enter_{target}_{n}"] = hq[i]
    out = pd.DataFrame(cols, index=pd.RangeIndex(1, horizon + 1, name=dims.HORIZON))
    out.attrs["origin"] = str(origin.date())
    return out


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------


def _feed_metadata(fit: xr.DataTree) -> dict:
    return {
        "feed_schema_version": FEED_SCHEMA_VERSION,
        "columns": [c._asdict() for c in FEED_SCHEMA],
        "stressflow_version": _package_version(),
        "fit_schema_version": int(np.asarray(fit.attrs.get("schema_version", -1)).item()),
        "fit_stressflow_version": str(fit.attrs.get("stressflow_version", "")),
        "fit_data_hash": str(fit.attrs.get("data_hash", "")),
        "feed_data_hash": str(fit.attrs.get("feed_data_hash", fit.attrs.get("data_hash", ""))),
        "fit_start": str(fit.attrs.get("start", "")),
        "fit_end": str(fit.attrs.get("end", "")),
        "feed_end": str(fit.attrs.get("feed_end", fit.attrs.get("end", ""))),
        "source": str(fit.attrs.get("source", "")),
    }


def export(fit: xr.DataTree, path, format: str = "csv") -> Path:
    """Write :func:`feed` to ``path`` as CSV or Parquet, with its schema metadata.

    One row per date with the columns of :data:`FEED_SCHEMA` (version
    :data:`FEED_SCHEMA_VERSION`), in order. Parquet keeps the dtypes and stores the metadata
    (schema version, column meanings, package version, data hashes, date range) under the
    key ``stressflow``; CSV writes dates as ``YYYY-MM-DD``, booleans as ``True``/``False``,
    missing values as empty fields and floats at full precision, and the same metadata to
    ``<path>.meta.json`` beside it. :func:`read_feed` reads either back with the schema's
    dtypes.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if format not in ("csv", "parquet"):
        raise ValueError(f"format must be 'csv' or 'parquet', got {format!r}")
    frame = feed(fit)
    meta = _feed_metadata(fit)
    path = Path(path)
    if format == "csv":
        frame.to_csv(path, index=False, date_format="%Y-%m-%d")
        Path(f"{path}.meta.json").write_text(json.dumps(meta, indent=1))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"stressflow": json.dumps(meta).encode()}
        )
        pq.write_table(table, path)
    return path


def read_feed(path) -> pd.DataFrame:
    """Read a file written by :func:`export` back with the dtypes of :data:`FEED_SCHEMA`.

    Raises ``ValueError`` if the columns differ from the schema (names or order) or the file
    says it has another feed schema version.
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(b"stressflow", b"{}"))
        frame = table.to_pandas()
    else:
        dates = [c.name for c in FEED_SCHEMA if c.dtype.startswith("datetime")]
        frame = pd.read_csv(path, parse_dates=dates)
        side = Path(f"{path}.meta.json")
        meta = json.loads(side.read_text()) if side.exists() else {}
    version = meta.get("feed_schema_version", FEED_SCHEMA_VERSION)
    if version != FEED_SCHEMA_VERSION:
        raise ValueError(
            f"{path} has feed schema version {version}; this stressflow reads version "
            f"{FEED_SCHEMA_VERSION}"
        )
    names = [c.name for c in FEED_SCHEMA]
    if list(frame.columns) != names:
        raise ValueError(f"{path}: columns {list(frame.columns)} differ from FEED_SCHEMA {names}")
    return _conform(frame)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _cmd_update(args) -> int:
    from stressflow.inference.postprocess.summaries import load_fit, save_fit

    try:
        fit = load_fit(args.fit)
        t0 = time.perf_counter()
        result = update(fit, args.new, date_column=args.date_column)
        seconds = time.perf_counter() - t0
    except (DataError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"stressflow update: {exc}", file=sys.stderr)
        return 1
    out = save_fit(result, args.out)
    last = json.loads(result.attrs["feed_last_update"])
    row = feed(result).iloc[-1]
    print(
        f"added {last['n_days']} day(s) {last['first']} .. {last['last']} in {seconds:.2f} s "
        f"(no refit; parameters fitted to {result.attrs.get('start')} .. "
        f"{result.attrs.get('end')})\n"
        f"last day {last['last']}: p_compulsion {row['p_compulsion']:.3f} "
        f"[{row['p_compulsion_q05']:.3f}, {row['p_compulsion_q95']:.3f}], p_margin_or_worse "
        f"{row['p_margin_or_worse']:.3f}\nwrote {out}"
    )
    return 0


def _cmd_export(args) -> int:
    from stressflow.inference.postprocess.summaries import load_fit

    try:
        fit = load_fit(args.fit)
        out = export(fit, args.out, format=args.format)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"stressflow export: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {out} ({out.stat().st_size / 1e3:.1f} kB, {len(feed(fit))} rows, feed schema "
        f"version {FEED_SCHEMA_VERSION})"
    )
    return 0


def register_cli(subparsers) -> None:
    """Add ``stressflow update`` and ``stressflow export`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "update", help="extend a saved fit's filtered probabilities to new days (no refit)"
    )
    p.add_argument("fit", help="fit netCDF written by `stressflow fit` or an earlier update")
    p.add_argument("new", help="CSV/Parquet with the new rows (date, high, low, close, volume)")
    p.add_argument("--date-column", default="date", help="name of the date column")
    p.add_argument("--out", required=True, help="output netCDF (the input is left unchanged)")
    p.set_defaults(func=_cmd_update)

    p = subparsers.add_parser(
        "export", help=f"write the risk feed (schema version {FEED_SCHEMA_VERSION}) to a file"
    )
    p.add_argument("fit", help="fit netCDF")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")
    p.add_argument("--out", required=True, help="output file")
    p.set_defaults(func=_cmd_export)
