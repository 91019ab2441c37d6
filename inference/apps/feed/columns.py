"""The feed's columns (:data:`FEED_SCHEMA`) and :func:`feed`, the causal view of a fit.

See :mod:`stressflow.inference.apps.feed` for what the feed is and its look-ahead statement.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.models import dims

__all__ = ["FEED_SCHEMA", "PANEL_FEED_SCHEMA", "FEED_SCHEMA_VERSION", "FeedColumn", "INTERVAL",
           "COMPULSION_STAGE", "MARGIN_OR_WORSE", "feed", "feed_from_stages", "conform",
           "require_feed"]

#: Version of :data:`FEED_SCHEMA`. Any change of a column's name, dtype, meaning or order
#: increments it; consumers should check it (Parquet metadata / the CSV's ``.meta.json``).
FEED_SCHEMA_VERSION = 2

#: Stage whose filtered probability is ``p_compulsion``.
COMPULSION_STAGE = "forced_flow"
#: Stages summed in ``p_margin_or_worse``.
MARGIN_OR_WORSE = schema.STAGE_GROUPS["margin_or_worse"]
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
    always = dims.stage_names(dims.MIN_STAGES)
    for k in dims.STAGES:
        absent = "" if k in always else f"; 0 from a model without the {k} stage"
        cols.append(FeedColumn(f"filtered_{k}", "float64", f"Pr(stage_t = {k} | y_1..y_t), {post}"
                               + absent))
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


#: The columns of a panel fit's feed (:func:`stressflow.inference.apps.panel_assets
#: .panel_feed`): :data:`FEED_SCHEMA` with ``asset`` after ``date``, one row per (date, asset).
PANEL_FEED_SCHEMA: tuple[FeedColumn, ...] = (
    FEED_SCHEMA[0],
    FeedColumn("asset", "str", "asset of the row (a panel fit's asset name); every probability "
               "of the row is that asset's stage given all the panel's assets' data"),
    *FEED_SCHEMA[1:],
)


#: What the feed reads from a fit.
FEED_NEEDS = {
    "posterior": ("filtered_last",),
    "stages": ("filtered", "filtered_quantile", "in_fit_window",
               "filtered_margin_or_worse_quantile"),
}


def require_feed(fit: xr.DataTree) -> None:
    """Raise unless ``fit`` is a fit holding what the feed needs (schema 2 or later)."""
    schema.require_fit(fit, needs=FEED_NEEDS, purpose="the feed (its filter state and "
                       "stage-group quantiles were added in schema 2)")


def quantile_position(levels: np.ndarray, level: float) -> int:
    hits = np.flatnonzero(np.isclose(levels, level, rtol=0, atol=1e-9))
    if not hits.size:
        raise ValueError(
            f"the fit's quantiles {list(map(float, levels))} do not include {level}, which the "
            f"feed's interval columns need; refit with quantiles containing {INTERVAL}"
        )
    return int(hits[0])


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
        ``filtered_<k> = Pr(stage_t = k | y_1..y_t)`` for the five stages of
        ``dims.STAGES`` (posterior means; 0 for a stage the model lacks)
        with their 5%/95% quantiles across draws; ``p_compulsion = Pr(stage_t = forced_flow |
        y_1..y_t)`` and ``p_margin_or_worse = Pr(stage_t in {margin_pressure, forced_flow} |
        y_1..y_t)`` with their quantiles (the latter computed from per-draw sums);
        ``smoothed_<k> = Pr(stage_t = k | y_1..y_T)`` (NaN after the fit window);
        ``in_fit_window``, ``n_observed``, ``observed`` and ``fit_data_end``. Dtypes are those
        of the schema. The fit is not modified.
    """
    require_feed(fit)
    return feed_from_stages(fit["stages"].to_dataset(), schema.time_index(fit),
                            schema.fit_data_end(fit))


def feed_from_stages(st: xr.Dataset, index: pd.DatetimeIndex,
                     data_end: pd.Timestamp) -> pd.DataFrame:
    """The plain layer of :func:`feed`: its rows from a ``stages`` group (``filtered``,
    ``filtered_quantile``, ``filtered_margin_or_worse_quantile``, ``smoothed``,
    ``in_fit_window``, ``observed`` over ``time`` and ``stage``), its days ``index`` and the
    last day of the fitted data ``data_end`` (the ``fit_data_end`` column)."""
    levels = np.asarray(st[dims.QUANTILE].values, dtype=np.float64)
    qpos = [quantile_position(levels, level) for level in INTERVAL]
    filtered = st["filtered"].transpose(dims.TIME, dims.STAGE).values.astype(np.float64)
    fq = st["filtered_quantile"].transpose(dims.QUANTILE, dims.TIME, dims.STAGE).values
    gq = st["filtered_margin_or_worse_quantile"].transpose(dims.QUANTILE, dims.TIME).values
    smoothed = st["smoothed"].transpose(dims.TIME, dims.STAGE).values.astype(np.float64)
    in_fit = st["in_fit_window"].values.astype(bool)
    n_obs = st["observed"].values.astype(np.int64)
    names = [str(k) for k in st[dims.STAGE].values]
    extra = [k for k in names if k not in dims.STAGES]
    if extra:
        raise ValueError(f"the feed has columns for the named stages {list(dims.STAGES)}; this "
                         f"fit's model also has {extra} (n_stages={len(names)}), which the "
                         "feed cannot carry: read fit['stages'] instead")
    # a model without some stage (4 stages: no discretionary; 2 or 3: no margin pressure)
    # gives it probability 0
    pad = [k for k in dims.STAGES if k not in names]
    if pad:
        filtered, fq, smoothed = (np.concatenate([a, np.zeros((*a.shape[:-1], len(pad)))],
                                                 axis=-1) for a in (filtered, fq, smoothed))
        names = names + pad
    order = [names.index(k) for k in dims.STAGES]
    filtered, fq, smoothed = filtered[..., order], fq[..., order], smoothed[..., order]
    smoothed = np.where(in_fit[:, None], smoothed, np.nan)
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
    cols["fit_data_end"] = np.full(len(index), pd.Timestamp(data_end).to_datetime64())
    return conform(pd.DataFrame(cols))


def conform(frame: pd.DataFrame, columns: tuple[FeedColumn, ...] = FEED_SCHEMA) -> pd.DataFrame:
    """The ``columns`` (default :data:`FEED_SCHEMA`), in order, cast to their dtypes."""
    names = [c.name for c in columns]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"feed frame lacks column(s) {missing}")
    out = frame[names].copy()
    for col in columns:
        out[col.name] = out[col.name].astype(col.dtype)
    return out.reset_index(drop=True)


