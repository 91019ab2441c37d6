"""Each asset of a panel fit, read by the single-asset applications: episodes, the catalogue,
the feed.

A panel fit (:func:`stressflow.inference.fitting.panel_fit.fit_panel`) holds every asset's
stage probabilities on one calendar. :func:`asset_view` cuts one asset out of it in the layout
of a one-asset fit (``observed_data``: ``close``, ``features`` and ``raw_features`` by
``feature``; ``stages``: ``smoothed``, ``filtered`` and their quantiles by ``stage``), so that
:func:`stressflow.inference.apps.episodes.score_episodes`, :func:`stressflow.inference.apps
.catalogue.score_catalogue` and the feed's columns apply to it unchanged. :func:`panel_episodes`,
:func:`panel_catalogue` and :func:`panel_feed` loop over the assets and add an ``asset``
column.

Every probability of a view is the panel's marginal for that asset, conditioned on **all**
assets' data: ``Pr(s_{a,t} = k | y_{1..T})`` (smoothed) and ``Pr(s_{a,t} = k | y_{1..t})``
(filtered), with ``y_t`` every asset's observables on day t; through the coupling the other
markets inform asset a's stage. Episode paths are the asset's coordinate of joint FFBS paths
(:func:`stressflow.inference.apps.migration.sample_asset_paths`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.apps.feed.columns import PANEL_FEED_SCHEMA, conform, feed_from_stages
from stressflow.inference.apps.migration import panel_spec, sample_asset_paths
from stressflow.models import dims

__all__ = ["MODEL_KIND", "tape_assets", "asset_view", "asset_paths", "panel_episodes",
           "panel_catalogue", "panel_feed"]

#: Root attribute ``model_kind`` of a view made by :func:`asset_view`.
MODEL_KIND = "panel_asset"
_TAPE_ORDER = "volatility"


def tape_assets(fit: xr.DataTree) -> list[str]:
    """The assets of a panel fit with a price tape (OHLCV observables, stages ordered on
    ``volatility``): those whose close has selloffs and rallies to score."""
    spec = panel_spec(fit)
    return [a for a, order in zip(spec.assets, spec.order_channels, strict=True)
            if order.split(":")[-1] == _TAPE_ORDER]


def _check_asset(fit: xr.DataTree, asset: str) -> None:
    assets = list(panel_spec(fit).assets)
    if asset not in assets:
        raise ValueError(f"asset {asset!r} is not in this panel fit (assets: {assets})")


def _group_quantile(stages: xr.Dataset, asset: str, names: list[str]) -> xr.DataArray:
    """``filtered_margin_or_worse_quantile`` of one asset; from fits written before it was
    stored, the forced-flow quantile when the model has no margin-pressure stage (then the
    group is forced flow alone), else an error."""
    name = "filtered_margin_or_worse_quantile"
    if name in stages:
        return stages[name].sel({dims.ASSET: asset}, drop=True)
    members = [k for k in dims.MARGIN_OR_WORSE if k in names]
    if members == [dims.FORCED_FLOW]:
        return stages["filtered_quantile"].sel({dims.ASSET: asset, dims.STAGE: dims.FORCED_FLOW},
                                               drop=True)
    raise ValueError(f"this panel fit has no stages/{name}: refit it with this stressflow")


def asset_view(fit: xr.DataTree, asset: str) -> xr.DataTree:
    """One asset of a panel fit in the layout of a one-asset fit (module docstring).

    Returns
    -------
    xarray.DataTree
        ``stages``: ``smoothed`` / ``filtered`` (time, stage) = ``Pr(s_{a,t} = k | y_{1..T})``
        / ``Pr(s_{a,t} = k | y_{1..t})`` with ``y`` all assets' observables (posterior
        means), their ``*_quantile`` (quantile, time, stage), ``filtered_margin_or_worse
        _quantile`` (quantile, time), ``in_fit_window`` (False on days added by
        :func:`stressflow.inference.apps.feed.panel_update.update_panel`) and ``observed`` (the
        asset's observables present on day t). ``observed_data``: ``features`` and
        ``raw_features`` (time, feature) with the asset prefix dropped from the channel names,
        and ``close`` (the asset's close for a tape asset, its level for a rate; on a day of
        the panel's calendar without a row of this asset the last close is carried forward,
        and before its first row its first close is used: the price did not move). Root
        attributes: ``model_kind = "panel_asset"``, ``asset``, ``source`` (the bundled dataset
        name of the asset), ``start`` / ``end`` (the panel fit's data range).
    """
    _check_asset(fit, asset)
    spec = panel_spec(fit)
    st = fit["stages"].to_dataset()
    names = [str(k) for k in st[dims.STAGE].values]
    one = {dims.ASSET: asset}
    stages = xr.Dataset({
        "smoothed": st["smoothed"].sel(one, drop=True),
        "filtered": st["filtered"].sel(one, drop=True),
        "smoothed_quantile": st["smoothed_quantile"].sel(one, drop=True),
        "filtered_quantile": st["filtered_quantile"].sel(one, drop=True),
        "filtered_margin_or_worse_quantile": _group_quantile(st, asset, names),
        "observed": st["observed"].sel(one, drop=True).astype(np.int64),
    })
    stages["in_fit_window"] = (st["in_fit_window"] if "in_fit_window" in st  # an updated fit
                               else (dims.TIME, np.ones(stages.sizes[dims.TIME], dtype=bool)))
    od = fit["observed_data"].to_dataset()
    channels = [c for c, a in zip(spec.channels, spec.channel_asset, strict=True) if a == asset]
    features = [c.split(":", 1)[1] for c in channels]

    def by_feature(name):
        arr = od[name].sel({dims.CHANNEL: channels}).rename({dims.CHANNEL: dims.FEATURE})
        return arr.assign_coords({dims.FEATURE: features})

    observed_data = xr.Dataset({
        "features": by_feature("features"), "raw_features": by_feature("raw_features"),
        "close": (dims.TIME, od["level"].sel(one, drop=True).to_series().ffill().bfill()
                  .to_numpy()),
    })
    report = json.loads(fit.attrs.get("data_report", "{}")).get(asset, {})
    view = xr.DataTree.from_dict({"stages": stages, "observed_data": observed_data})
    view.attrs.update({
        "model_kind": MODEL_KIND, "asset": asset, "source": str(report.get("source", asset)),
        "schema_version": fit.attrs["schema_version"],
        "start": str(fit.attrs.get("data_start", "")), "end": str(fit.attrs.get("data_end", "")),
    })
    return view


def asset_paths(paths: xr.DataArray, asset: str) -> xr.DataArray:
    """One asset's coordinate of joint panel paths, in the layout of
    :func:`stressflow.inference.postprocess.paths.sample_stage_paths`: (sample, time) with
    ``chain`` (0) and ``draw`` (the chains-stacked posterior draw) per sample and the stage
    names as a JSON attribute."""
    if asset not in [str(a) for a in paths[dims.ASSET].values]:
        raise ValueError(f"asset {asset!r} is not in these paths")
    one = paths.sel({dims.ASSET: asset}, drop=True).transpose("draw", dims.SAMPLE, dims.TIME)
    n_draw, n_path = one.sizes["draw"], one.sizes[dims.SAMPLE]
    draw = np.repeat(one["draw"].values.astype(np.int64), n_path)
    return xr.DataArray(
        one.values.reshape(n_draw * n_path, -1), dims=(dims.SAMPLE, dims.TIME),
        coords={dims.TIME: one[dims.TIME].values,
                dims.CHAIN: (dims.SAMPLE, np.zeros(draw.size, np.int64)),
                dims.DRAW: (dims.SAMPLE, draw)},
        name="stage_path", attrs={"stages": json.dumps(list(paths.attrs["stages"]))})


def _scored_assets(fit, assets, paths, n_draws, paths_per_draw, seed):
    assets = tape_assets(fit) if assets is None else list(assets)
    for a in assets:
        _check_asset(fit, a)
    if paths is None:
        paths = sample_asset_paths(fit, n_draws=n_draws, paths_per_draw=paths_per_draw,
                                   seed=seed)
    return assets, paths


def _stack(tables: dict[str, pd.DataFrame], inner: str) -> pd.DataFrame:
    frames = [t.reset_index(drop=inner in t.columns).assign(asset=a)
              for a, t in tables.items() if len(t)]
    if not frames:
        return pd.DataFrame(columns=[dims.ASSET, inner]).set_index([dims.ASSET, inner])
    out = pd.concat(frames, ignore_index=True)
    return out.set_index([dims.ASSET, inner])


def panel_episodes(fit: xr.DataTree, *, assets=None, drawdown: float = 0.10,
                   runup: float = 0.10, min_share: float = 0.5, lead_in: int = 5,
                   hi: float = 0.7, lo: float = 0.3, n_draws: int = 200,
                   paths_per_draw: int = 5, seed: int = 0,
                   paths: xr.DataArray | None = None) -> pd.DataFrame:
    """Selloffs and rallies of each tape asset of a panel fit, scored for compulsion.

    Per asset a (default :func:`tape_assets`), episodes are detected on its close and scored by
    :func:`stressflow.inference.apps.episodes.score_episodes` on its paths:
    ``p_compulsion = Pr(#{t in D : s_{a,t} = forced_flow} >= min_share * |D| | y_{1..T})`` with
    ``y`` every asset's data (with two stages per asset, ``forced_flow`` is the asset's upper
    stage: a stress regime, see the README).

    Returns
    -------
    pandas.DataFrame
        Index (``asset``, ``episode``); the columns of
        :func:`stressflow.inference.apps.episodes.episodes`.
    """
    from stressflow.inference.apps.detection import detect_episodes
    from stressflow.inference.apps.episodes import EPISODE, score_episodes

    assets, paths = _scored_assets(fit, assets, paths, n_draws, paths_per_draw, seed)
    tables = {}
    for a in assets:
        view = asset_view(fit, a)
        close = view["observed_data"]["close"].to_series()
        table = detect_episodes(close, drawdown=drawdown, runup=runup)
        table.index.name = EPISODE
        tables[a] = score_episodes(view, table, asset_paths(paths, a), min_share=min_share,
                                   lead_in=lead_in, hi=hi, lo=lo) if len(table) else table
    return _stack(tables, EPISODE)


def panel_catalogue(fit: xr.DataTree, *, assets=None, min_share: float = 0.5,
                    lead_in: int = 5, hi: float = 0.7, lo: float = 0.3, n_draws: int = 200,
                    paths_per_draw: int = 5, seed: int = 0,
                    paths: xr.DataArray | None = None) -> pd.DataFrame:
    """The catalogued episodes of each tape asset's market inside the panel's range, scored
    as :func:`stressflow.inference.apps.catalogue.score_catalogue` scores a one-asset fit
    (the asset's bundled dataset name is its catalogue market; an asset from a frame is
    skipped). Index (``asset``, ``episode``: the catalogue's episode name)."""
    from stressflow.data.bundled import DATASETS
    from stressflow.inference.apps.catalogue import score_catalogue
    from stressflow.inference.apps.episodes import EPISODE

    assets, paths = _scored_assets(fit, assets, paths, n_draws, paths_per_draw, seed)
    tables = {}
    for a in assets:
        view = asset_view(fit, a)
        if view.attrs["source"] not in DATASETS:
            continue
        tables[a] = score_catalogue(view, min_share=min_share, lead_in=lead_in, hi=hi, lo=lo,
                                    paths=asset_paths(paths, a))
    return _stack(tables, EPISODE)


def panel_feed(fit: xr.DataTree) -> pd.DataFrame:
    """The risk feed of every asset of a panel fit: the columns of
    :data:`stressflow.inference.apps.feed.columns.PANEL_FEED_SCHEMA` (:data:`FEED_SCHEMA` with
    ``asset`` after ``date``), one row per (date, asset), assets in the fit's order within each
    date.

    ``p_compulsion = Pr(s_{a,t} = forced_flow | y_{1..t})`` with ``y`` every asset's data up to
    day t (causal); ``smoothed_*`` use the whole sample (NaN on days added by
    :func:`stressflow.inference.apps.feed.panel_update.update_panel`, which does not smooth);
    ``fit_data_end`` is the last day of the fit's window."""
    spec = panel_spec(fit)
    schema.schema_version(fit)
    frames = []
    for a in spec.assets:
        view = asset_view(fit, a)
        frame = feed_from_stages(view["stages"].to_dataset(), schema.time_index(view),
                                 schema.fit_data_end(view))
        frame.insert(1, dims.ASSET, a)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    order = {a: i for i, a in enumerate(spec.assets)}
    out = out.sort_values(["date", dims.ASSET], key=lambda s: s.map(order) if s.name ==
                          dims.ASSET else s, kind="stable")
    return conform(out, PANEL_FEED_SCHEMA)
