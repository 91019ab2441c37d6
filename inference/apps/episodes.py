"""Episode by episode: was a selloff forced or discretionary, was a rally a short squeeze?

An *episode* is a window of trading days over which the price made a large move, either found
in the close series (:func:`detect_episodes`) or given by the user (:func:`window_episodes`).
Each episode is scored with posterior probabilities of events about its **joint** stage path,
estimated from FFBS path samples (:mod:`stressflow.inference.postprocess.paths`). Compulsion is
defined by
the stages alone (the observables: volatility, spread, impact, volume), never by the sign of
the return; the direction only names the label.

Definitions (``D`` = the episode's days: trading days of the fit in ``[start, end]`` with at
least one observable present; ``|D|`` their number; ``FF`` = ``forced_flow``, ``MP`` =
``margin_pressure``):

``p_compulsion``
    ``Pr( #{t in D : stage_t = FF} >= min_share * |D|  |  y_1..y_T )``.
``p_margin_pressure_or_worse``
    ``Pr( #{t in D : stage_t in {MP, FF}} >= min_share * |D|  |  y_1..y_T )``.
``*_q05`` / ``*_q95``
    5% / 95% quantiles across the used posterior draws ``theta^(s)`` of the per-draw
    probability ``Pr(event | y_1..y_T, theta^(s))``, each estimated by the share of that
    draw's ``paths_per_draw`` paths in the event (so the interval also carries Monte Carlo
    noise of order ``0.5 / sqrt(paths_per_draw)``).
``forced_share``
    ``E[ #{t in D : stage_t = FF} / |D|  |  y_1..y_T ]``, the expected share of forced days.
``p_any_forced``
    ``Pr( stage_t = FF for some t in D  |  y_1..y_T )``.
``p_margin_lead_in``
    ``Pr( stage_u = MP for some u in [o - lead_in, o - 1]  |  FF occurs in D, y_1..y_T )``
    where, on each path, ``o`` is the first day of the forced-flow spell (maximal run of
    consecutive FF days, which may begin before ``start``) containing the first FF day of
    ``D``, and ``u`` runs over the fit's rows (days before the fit's first day count as no
    margin pressure). High: flow became forced after a margin-pressure phase (pre-emptive
    deleveraging that turned into a loss of discretion); low: forced flow arrived without that
    lead-in. NaN when no sampled path has FF in ``D``, or the model has no MP stage (K < 4;
    "MP or worse" is then FF alone). With ``transitions="gated"`` (the default) forced
    flow can only be entered from margin pressure, so it is 1 by construction whenever
    ``lead_in >= 1`` and the spell does not start on the fit's first day; with
    ``"sequential"`` it can also be entered from the discretionary stage.

Labels (``hi``, ``lo`` thresholds on ``p_compulsion``): ``forced selling`` (selloff,
p >= hi), ``short covering`` (rally, p >= hi), ``discretionary de-risking`` (selloff,
p <= lo), ``discretionary rally`` (rally, p <= lo), ``undetermined`` otherwise.

Relative activity (from ``observed_data.raw_features``, means over ``D`` skipping missing):
``volume_rel = exp(mean_t raw volume_t)``, the geometric mean of ``v_t / median(v over the
previous 63 days)``; ``impact_rel = exp(mean_t raw impact_t)``, the geometric mean of the
Amihud ratio ``|r_t| / (c_t v_t)`` over its median of the previous 252 days. NaN when the
observable is absent.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.apps.detection import (
    RALLY,
    SELLOFF,
    detect_episodes,
    window_episodes,
)
from stressflow.models import dims
from stressflow.models.messages import require_int, shown

__all__ = [
    "EPISODE",
    "LABELS",
    "detect_episodes",
    "window_episodes",
    "compulsion_scores",
    "label_episode",
    "score_episodes",
    "episodes",
]

#: Dimension / index name of an episode table, from :mod:`stressflow.models.dims`.
EPISODE = dims.EPISODE

MARGIN_PRESSURE = "margin_pressure"

#: The five episode labels.
LABELS = (
    "forced selling",
    "short covering",
    "discretionary de-risking",
    "discretionary rally",
    "undetermined",
)


# ------------------------------------------------------------------------------------------
# Scores from path samples (plain arrays)
# ------------------------------------------------------------------------------------------


def _check_options(min_share: float = 0.5, lead_in: int = 5, hi: float = 0.7,
                   lo: float = 0.3) -> int:
    """ValueError on an invalid ``min_share`` (in (0, 1]), ``lead_in`` (an integer >= 0) or
    label thresholds (``0 <= lo < hi <= 1``); returns ``lead_in`` as an int."""
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {shown(min_share)}")
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"need 0 <= lo < hi <= 1, got lo={shown(lo)}, hi={shown(hi)}")
    return require_int("lead_in", lead_in, 0)


def compulsion_scores(
    paths: np.ndarray,
    draw_of_sample: np.ndarray,
    days: np.ndarray,
    *,
    min_share: float = 0.5,
    lead_in: int = 5,
    quantiles: tuple[float, float] = (0.05, 0.95),
    stages: tuple[str, ...] = dims.STAGES,
) -> dict[str, float]:
    """Posterior probabilities of compulsion events over one episode, from path samples.

    Parameters
    ----------
    paths : ndarray of int, shape (N, T)
        Stage paths, draws from ``Pr(stage_1..stage_T | y_1..y_T)``
        (:func:`stressflow.inference.postprocess.paths.stage_paths`).
    draw_of_sample : ndarray, shape (N,)
        Posterior draw each path was sampled under (any hashable integer label).
    days : ndarray of int, shape (n,)
        Sorted column indices of the episode's days ``D`` (n >= 1).
    min_share : float
        The share of ``D`` that must be in the stage(s) for the event.
    lead_in : int
        Days before the first forced-flow day searched for margin pressure.
    stages : tuple of str
        The model's stage names in index order (``paths`` value k is stage ``stages[k]``);
        default the five-stage model's. A model without margin pressure (K < 4) has
        ``p_margin_lead_in`` NaN.

    Returns
    -------
    dict
        ``p_compulsion``, ``p_compulsion_q05``, ``p_compulsion_q95``,
        ``p_margin_pressure_or_worse`` (and its ``_q05``/``_q95``), ``forced_share``,
        ``p_any_forced`` (``Pr(some t in D has stage_t = FF | y_1..y_T)``) and
        ``p_margin_lead_in``, as defined in the module docstring.
    """
    paths = np.asarray(paths)
    days = np.asarray(days, dtype=np.int64)
    if days.ndim != 1 or days.size == 0:
        raise ValueError("an episode needs at least one day with an observation")
    lead_in = _check_options(min_share, lead_in)
    stages = [str(k) for k in stages]
    forced = stages.index(dims.FORCED_FLOW)
    margin = stages.index(MARGIN_PRESSURE) if MARGIN_PRESSURE in stages else None
    margin_or_worse = [stages.index(k) for k in dims.MARGIN_OR_WORSE if k in stages]
    sub = paths[:, days]
    need = min_share * days.size
    ff = sub == forced
    n_ff = ff.sum(axis=1)
    comp = n_ff >= need - 1e-9
    mp_or_worse = np.isin(sub, margin_or_worse).sum(axis=1) >= need - 1e-9
    _, group = np.unique(np.asarray(draw_of_sample), return_inverse=True)
    counts = np.bincount(group)
    q = np.asarray(quantiles, dtype=np.float64)

    def per_draw_q(event):
        per = np.bincount(group, weights=event.astype(np.float64)) / counts
        return np.quantile(per, q)

    has = n_ff > 0
    if has.any() and margin is not None:
        first = days[np.argmax(ff[has], axis=1)]
        p_lead = float(_lead_in(paths[has], first, lead_in, forced, margin).mean())
    else:
        p_lead = float("nan")
    cq = per_draw_q(comp)
    mq = per_draw_q(mp_or_worse)
    return {
        "p_compulsion": float(comp.mean()),
        "p_compulsion_q05": float(cq[0]),
        "p_compulsion_q95": float(cq[1]),
        "p_margin_pressure_or_worse": float(mp_or_worse.mean()),
        "p_margin_pressure_or_worse_q05": float(mq[0]),
        "p_margin_pressure_or_worse_q95": float(mq[1]),
        "forced_share": float(n_ff.mean() / days.size),
        "p_any_forced": float(has.mean()),
        "p_margin_lead_in": p_lead,
    }


def _lead_in(paths: np.ndarray, first: np.ndarray, lead_in: int, forced: int,
             margin: int) -> np.ndarray:
    """Per path: is there margin pressure (stage index ``margin``) in the ``lead_in`` days
    before the onset of the forced-flow (index ``forced``) spell that contains day ``first``?
    (bool array, one per row of ``paths``)."""
    rows = np.arange(paths.shape[0])
    onset = first.astype(np.int64).copy()
    active = onset > 0
    active[active] = paths[rows[active], onset[active] - 1] == forced
    while active.any():  # walk back to the first day of the forced-flow spell
        onset[active] -= 1
        active &= onset > 0
        active[active] = paths[rows[active], onset[active] - 1] == forced
    if lead_in == 0:
        return np.zeros(paths.shape[0], dtype=bool)
    back = onset[:, None] - np.arange(1, lead_in + 1)[None, :]
    valid = back >= 0
    stage = paths[rows[:, None], np.where(valid, back, 0)]
    return ((stage == margin) & valid).any(axis=1)


def label_episode(direction: str, p_compulsion: float, *, hi: float = 0.7,
                  lo: float = 0.3) -> str:
    """The episode label from its direction and ``p_compulsion`` (see :data:`LABELS`)."""
    if direction not in (SELLOFF, RALLY):
        raise ValueError(f"direction must be 'selloff' or 'rally', got {direction!r}")
    _check_options(hi=hi, lo=lo)
    if not np.isfinite(p_compulsion):
        return "undetermined"
    if p_compulsion >= hi:
        return "forced selling" if direction == SELLOFF else "short covering"
    if p_compulsion <= lo:
        return "discretionary de-risking" if direction == SELLOFF else "discretionary rally"
    return "undetermined"


# ------------------------------------------------------------------------------------------
# The fit-level layer
# ------------------------------------------------------------------------------------------


def _fit_close(fit: xr.DataTree) -> pd.Series:
    if "observed_data" not in fit.children or "close" not in fit["observed_data"]:
        raise ValueError("the fit has no observed_data.close: is it a stressflow fit?")
    return fit["observed_data"]["close"].to_series()


def _relative(fit: xr.DataTree, feature: str, days: np.ndarray) -> float:
    raw = fit["observed_data"]["raw_features"]
    if feature not in [str(f) for f in raw[dims.FEATURE].values]:
        return float("nan")
    vals = raw.sel({dims.FEATURE: feature}).values[days]
    vals = vals[np.isfinite(vals)]
    return float(np.exp(vals.mean())) if vals.size else float("nan")


def _path_stages(fit: xr.DataTree, paths: xr.DataArray) -> tuple[str, ...]:
    """The stage names the path values index: the paths' own ``stages`` attribute, else the
    fit's model."""
    if "stages" in paths.attrs:
        return tuple(json.loads(paths.attrs["stages"]))
    return schema.read_spec(fit).stage_names


def score_episodes(
    fit: xr.DataTree,
    table: pd.DataFrame,
    paths: xr.DataArray,
    *,
    min_share: float = 0.5,
    lead_in: int = 5,
    hi: float = 0.7,
    lo: float = 0.3,
) -> pd.DataFrame:
    """Add relative activity, compulsion probabilities and a label to an episode table.

    Parameters
    ----------
    fit : xarray.DataTree
        The fit the paths were sampled from.
    table : pandas.DataFrame
        Episodes with at least ``direction``, ``start``, ``end`` (from :func:`detect_episodes`
        or :func:`window_episodes` on the fit's close). Not modified.
    paths : xarray.DataArray (sample, time)
        From :func:`stressflow.inference.postprocess.paths.sample_stage_paths` on ``fit``.

    Returns
    -------
    pandas.DataFrame
        A copy of ``table`` with ``n_days`` (``|D|``), ``volume_rel``, ``impact_rel`` and the
        probabilities of :func:`compulsion_scores` and ``label`` (see the module docstring).
    """
    time_index = pd.DatetimeIndex(fit["observed_data"][dims.TIME].values)
    if paths.sizes[dims.TIME] != len(time_index):
        raise ValueError("the paths do not belong to this fit (different number of days)")
    feats = fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE).values
    observed = np.isfinite(feats).any(axis=1)
    draw_id = paths[dims.CHAIN].values.astype(np.int64) * 1_000_000 + paths[dims.DRAW].values
    arr = paths.values
    stages = _path_stages(fit, paths)
    out = table.copy()
    rows = []
    for _, ep in table.iterrows():
        i0 = time_index.searchsorted(pd.Timestamp(ep["start"]), side="left")
        i1 = time_index.searchsorted(pd.Timestamp(ep["end"]), side="right") - 1
        days = np.arange(i0, i1 + 1)
        days = days[observed[days]] if days.size else days
        row = {"n_days": int(days.size)}
        if days.size == 0:
            rows.append(row | {"label": "undetermined"})
            continue
        row["volume_rel"] = _relative(fit, "volume", days)
        row["impact_rel"] = _relative(fit, "impact", days)
        row.update(compulsion_scores(arr, draw_id, days, min_share=min_share, lead_in=lead_in,
                                     stages=stages))
        row["label"] = label_episode(ep["direction"], row["p_compulsion"], hi=hi, lo=lo)
        rows.append(row)
    scores = pd.DataFrame(rows, index=table.index)
    for col in scores.columns:
        out[col] = scores[col]
    return out


def episodes(
    fit: xr.DataTree,
    *,
    windows=None,
    drawdown: float = 0.10,
    runup: float = 0.10,
    min_share: float = 0.5,
    lead_in: int = 5,
    hi: float = 0.7,
    lo: float = 0.3,
    n_draws: int | None = 200,
    paths_per_draw: int = 10,
    seed: int = 0,
    paths: xr.DataArray | None = None,
) -> pd.DataFrame:
    """Episodes of a fit, each scored with ``p_compulsion`` and labelled.

    Episodes are detected on ``observed_data.close`` with :func:`detect_episodes`
    (``drawdown``, ``runup``) or taken from ``windows`` (:func:`window_episodes`), then scored
    from FFBS path samples of ``Pr(stage_1..stage_T | y_1..y_T)`` by :func:`score_episodes`.

    ``p_compulsion = Pr(#{t in D : stage_t = forced_flow} >= min_share * |D| | y_1..y_T)``
    with ``D`` the episode's days with an observation; the other columns are defined in the
    module docstring.

    Parameters
    ----------
    fit : xarray.DataTree
        A stressflow fit.
    windows : list of (start, end) or DataFrame, optional
        User windows instead of detection.
    n_draws, paths_per_draw, seed
        Passed to :func:`stressflow.inference.postprocess.paths.sample_stage_paths` (ignored if
        ``paths``
        is given).
    paths : xarray.DataArray, optional
        Precomputed path samples of this fit.

    Returns
    -------
    pandas.DataFrame
        One row per episode (index ``episode``), columns ``direction, start, extreme, end,
        move, return, confirmed, n_days, volume_rel, impact_rel, p_compulsion,
        p_compulsion_q05, p_compulsion_q95, p_margin_pressure_or_worse (+ _q05/_q95),
        forced_share, p_any_forced, p_margin_lead_in, label``.
    """
    from stressflow.inference.postprocess.paths import sample_stage_paths

    # every option is checked before the work, not only when some episode is scored
    _check_options(min_share, lead_in, hi, lo)
    close = _fit_close(fit)
    if windows is None:
        table = detect_episodes(close, drawdown=drawdown, runup=runup)
    else:
        table = window_episodes(close, windows)
    if paths is None:
        paths = sample_stage_paths(fit, n_draws=n_draws, paths_per_draw=paths_per_draw,
                                   seed=seed)
    table = score_episodes(fit, table, paths, min_share=min_share, lead_in=lead_in, hi=hi,
                           lo=lo)
    table.index.name = EPISODE
    return table
