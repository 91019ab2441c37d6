"""Extend a fit's filtered probabilities to new days without refitting (:func:`update`)."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.data import DataError, DataWarning, FeatureTransform, prepare, read_prices
from stressflow.data.observables import OPTIONAL_OBSERVABLES, optional_history_rows
from stressflow.inference import schema
from stressflow.inference.apps.feed.columns import require_feed
from stressflow.inference.apps.feed.seam import check_continuity, check_market, split_repeated
from stressflow.inference.fitting.assemble import data_hash, package_version
from stressflow.inference.postprocess.stages import filter_forward
from stressflow.models import dims
from stressflow.models.evaluate import evaluate_draws, model_data

__all__ = ["check_continuity", "check_market", "extend_along_time", "update"]


def _history_rows(stored: pd.DataFrame, tr: FeatureTransform) -> pd.DataFrame:
    """The stored rows the trailing windows of the next day need (counted in trading rows)."""
    need = max(tr.impact_window + 1, tr.volume_window, tr.spread_window,
               optional_history_rows(tr.features))
    traded = (stored["volume"] != 0).to_numpy()
    counted = np.cumsum(traded[::-1])
    if counted[-1] < need:
        import warnings

        warnings.warn(
            f"the fit stores {int(counted[-1])} trading rows, fewer than the {need} the trailing "
            f"windows need (impact {tr.impact_window} + 1, volume {tr.volume_window}, spread "
            f"{tr.spread_window}, the optional observables' windows); the first new days' "
            "observables use that shorter history, "
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


def extend_along_time(ds: xr.Dataset, new_index: pd.DatetimeIndex, computed: dict) -> xr.Dataset:
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


def update(fit: xr.DataTree, new_rows, *, columns=None, date_column: str = "date",
           covariate_data=None, check_seam: bool = True) -> xr.DataTree:
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
        Daily rows with the columns the fit used (``high, low, close, volume``, and the
        spread / extra columns if any): the days after the fit's last date, optionally preceded
        by days it stores (e.g. the whole re-downloaded history), which must equal the stored
        rows (:func:`~stressflow.inference.apps.feed.seam.split_repeated`) and are then skipped,
        as are rows before the first stored day. Stored days are never rewritten.
    columns, date_column
        As in :func:`stressflow.data.read_prices`.
    covariate_data : DataFrame, optional
        For a fit with covariate-driven transitions whose covariates are user columns (or
        ``hy_oas``): their values over the new days (and the trailing rows their formulas need),
        as in :func:`stressflow.data.prepare`. Bundled covariates are read from the bundled
        series; columns of ``new_rows`` are used as given.
    check_seam : bool, default True
        Check that the new rows continue the fit's series (:func:`check_continuity`: the
        market name, the calendar and the price and volume levels at the seam). Pass False
        only for a real move that the checks refuse (e.g. a price jump beyond 20 robust sd
        and 3x at the first new day).

    Returns
    -------
    xarray.DataTree
        A new tree: the fit's groups unchanged except ``stages`` and ``observed_data``, which
        get the new days appended along ``time`` (``filtered``, ``filtered_quantile``,
        ``filtered_margin_or_worse_quantile``, ``observed`` computed; ``smoothed*`` NaN,
        ``viterbi`` empty, ``in_fit_window`` False); a group ``feed_state`` with
        ``filtered_last`` (chain, draw, stage) ``= Pr(stage_{T+n} = k | y_1..y_{T+n},
        theta_s)``; root attributes ``feed_end``, ``feed_n_days``, ``feed_data_hash``,
        ``feed_updates`` and ``feed_last_update`` (JSON: the days added, their data hash,
        ``repeated_days_checked`` and ``earlier_rows_ignored``) added (the fit's own
        attributes, including ``start``/``end`` of the fit window and ``data_hash``, are kept
        as they were).

    Raises
    ------
    DataError
        Invalid rows (as for fitting data: the message names the column and date); repeated
        stored days that differ from the stored rows (a revised or re-based history: the
        message names the first date and column); no row after the fit's last date; a column the fit
        used is absent; rows that do not continue the fit's series (another bundled market, a
        gap of 10 or more business days, or a price or volume level far from the stored last
        days: see :func:`check_continuity`).
    ValueError
        The fit lacks the stored state or price rows (schema 1, or built without prices).
    """
    require_feed(fit)
    t0 = time.perf_counter()
    tr = FeatureTransform.from_dict(json.loads(fit.attrs["transform"]))
    stored = schema.stored_prices(fit)
    last = schema.time_index(fit)[-1]
    if check_seam:
        check_market(fit, new_rows)
    new = read_prices(new_rows, columns=columns, date_column=date_column)
    new, n_repeated, n_earlier = split_repeated(stored, new)
    if not len(new):
        raise DataError(
            f"the new rows hold no day after the last stored date {last:%Y-%m-%d}"
            + (f" (they repeat {n_repeated} stored day(s), equal to the stored values)"
               if n_repeated else "") + "; nothing to add"
        )
    extras = [f for f in tr.features
              if f not in dims.FEATURES and f not in OPTIONAL_OBSERVABLES]
    needed = [*([tr.spread_column] if tr.spread_column else []), *extras]
    absent = [c for c in needed if c not in new.columns]
    if absent:
        raise DataError(
            f"new rows lack the column(s) {absent} the fit used (spread / extra columns); "
            f"available: {list(new.columns)}"
        )
    if check_seam:
        check_continuity(stored, new)
    kept = list(stored.columns)
    # covariates computed on trailing windows (e.g. low_vol: 1,512 rows) need the whole stored
    # history; the observables need only their own windows
    history = stored if tr.covariates else _history_rows(stored, tr)
    _warn_short_covariate_history(stored, tr)
    combined = pd.concat([history, new[[c for c in kept if c in new.columns]]])
    combined.index.name = "date"
    # The window starts at the last stored day (prepare needs >= 2 rows); that day's
    # observables are recomputed here only to be dropped: the stored ones are kept.
    prep = prepare(
        combined, start=history.index[-1], transform=tr, spread_column=tr.spread_column,
        extra_columns=extras, min_rows=2, covariate_data=covariate_data,
    )
    new_features = prep.features.iloc[1:]
    new_raw = prep.raw.iloc[1:]
    new_prices = prep.prices.iloc[1:]
    if not new_features.index.equals(pd.DatetimeIndex(new.index, name=dims.TIME)):
        raise RuntimeError("internal: prepared dates differ from the new rows' dates")

    spec = schema.read_spec(fit)
    params, (n_chains, n_draws) = schema.posterior_params(fit["posterior"], spec)
    state, state_date = schema.filter_state(fit)
    if state_date != last:
        raise ValueError(
            f"the stored filter state is dated {state_date:%Y-%m-%d} but the last stored day is "
            f"{last:%Y-%m-%d}; the fit file is inconsistent"
        )
    st = fit["stages"]
    levels = tuple(float(q) for q in st[dims.QUANTILE].values)
    options = json.loads(fit.attrs.get("fit_options", "{}"))
    # The model evaluated on the last stored day and the new days: its transitions are the
    # moves into each new day (from day T for the first), its log-likelihoods those of the
    # stored day (dropped) and the new days.
    seam = fit["observed_data"].isel({dims.TIME: [-1]})
    feats = np.vstack([seam["features"].transpose(dims.TIME, dims.FEATURE).values,
                       new_features.to_numpy(dtype=np.float64)])
    new_cov = None
    if spec.time_varying:
        new_cov = _new_covariates(prep, spec)
        covs = np.vstack([seam["covariates"].transpose(dims.TIME, dims.COVARIATE).values,
                          new_cov.to_numpy(dtype=np.float64)])
    else:
        covs = None
    data = model_data(spec, feats, covs)
    mask = np.isfinite(new_features.to_numpy(dtype=np.float64))

    def terms(lo, hi):
        _, log_trans, log_lik = evaluate_draws(spec, params, data, lo, hi)
        return log_trans, log_lik[:, 1:]

    res = filter_forward(
        terms, n_chains * n_draws, state, quantiles=levels,
        max_quantile_draws=int(options.get("max_quantile_draws", 1000)),
        filtered_groups=schema.stage_group_indices(spec.stage_names),
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
    for g in schema.STAGE_GROUPS:
        computed_stages[f"filtered_{g}_quantile"] = (
            (dims.QUANTILE, dims.TIME), res.filtered_group_q[g]
        )
    new_stages = extend_along_time(st.to_dataset(), new_index, computed_stages)

    obs = fit["observed_data"].to_dataset()
    time_feature = (dims.TIME, dims.FEATURE)
    computed_obs = {
        "features": (time_feature, new_features.to_numpy(dtype=np.float64)),
        "raw_features": (time_feature, new_raw.to_numpy(dtype=np.float64)),
    }
    if new_cov is not None:
        computed_obs["covariates"] = ((dims.TIME, dims.COVARIATE),
                                      new_cov.to_numpy(dtype=np.float64))
        raw = getattr(prep, "raw_covariates", None)
        if raw is not None and "raw_covariates" in obs:
            computed_obs["raw_covariates"] = (
                (dims.TIME, dims.COVARIATE),
                raw.iloc[1:][list(spec.transition_covariates)].to_numpy(dtype=np.float64))
    for c in kept:
        computed_obs[schema.price_variable(c)] = ((dims.TIME,), new_prices[c].to_numpy(np.float64))
    if list(obs[dims.FEATURE].values) != list(new_features.columns):
        raise ValueError(
            f"stored features {[str(x) for x in obs[dims.FEATURE].values]} differ from the "
            f"transform's {[str(c) for c in new_features.columns]}"
        )
    new_obs = extend_along_time(obs, new_index, computed_obs)

    post = fit["posterior"]
    state_ds = xr.Dataset(
        {"filtered_last": ((dims.CHAIN, dims.DRAW, dims.STAGE),
                           res.filtered_last.reshape(n_chains, n_draws, -1))},
        coords={dims.CHAIN: post[dims.CHAIN].values, dims.DRAW: post[dims.DRAW].values,
                dims.STAGE: list(spec.stage_names)},
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
        "feed_data_hash": data_hash(all_features),
        "feed_updates": int(attrs.get("feed_updates", 0)) + 1,
        "feed_last_update": json.dumps({
            "first": str(new_index[0].date()), "last": str(new_index[-1].date()),
            "n_days": n_new, "data_hash": data_hash(new_features),
            "repeated_days_checked": n_repeated, "earlier_rows_ignored": n_earlier,
            "stressflow_version": package_version(),
            "seconds": round(time.perf_counter() - t0, 6),
        }),
    })
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **groups})
    return tree




def _new_covariates(prep, spec) -> pd.DataFrame:
    """The new days' standardised transition covariates (the stored transform's scale)."""
    covs = getattr(prep, "covariates", None)
    missing = [c for c in spec.transition_covariates if covs is None or c not in covs.columns]
    if missing:
        raise DataError(f"the new rows give no values of the transition covariates {missing} "
                        "that the fit's transition model needs")
    return covs.iloc[1:][list(spec.transition_covariates)]


def _warn_short_covariate_history(stored: pd.DataFrame, tr: FeatureTransform) -> None:
    """Warn when the stored rows are fewer than a covariate's trailing windows need: its values
    on the new days then use a shorter history than :func:`stressflow.data.prepare` on the
    whole series would (the fit stores its window's rows only)."""
    from stressflow.data.covariates import history_rows

    need = history_rows(tr.covariates)
    if len(stored) < need:
        import warnings

        warnings.warn(
            f"the fit stores {len(stored)} rows, fewer than the {need} its covariates' trailing "
            f"windows need ({', '.join(tr.covariates)}); the new days' covariates use that "
            "shorter history and can differ from prepare() on the whole series. Fit on a "
            "longer window to avoid this",
            DataWarning, stacklevel=3,
        )
