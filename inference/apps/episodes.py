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
``p_margin_lead_in``
    ``Pr( stage_u = MP for some u in [o - lead_in, o - 1]  |  FF occurs in D, y_1..y_T )``
    where, on each path, ``o`` is the first day of the forced-flow spell (maximal run of
    consecutive FF days, which may begin before ``start``) containing the first FF day of
    ``D``, and ``u`` runs over the fit's rows (days before the fit's first day count as no
    margin pressure). High: flow became forced after a margin-pressure phase (pre-emptive
    deleveraging that turned into a loss of discretion); low: forced flow arrived without that
    lead-in. NaN when no sampled path has FF in ``D``. With ``transitions="sequential"`` forced
    flow can only be entered from margin pressure, so it is 1 by construction whenever
    ``lead_in >= 1`` and the spell does not start on the fit's first day.

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

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.models import dims

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

SELLOFF, RALLY = "selloff", "rally"
FORCED_FLOW = dims.STAGES.index("forced_flow")
MARGIN_PRESSURE = dims.STAGES.index("margin_pressure")

#: The five episode labels.
LABELS = (
    "forced selling",
    "short covering",
    "discretionary de-risking",
    "discretionary rally",
    "undetermined",
)

_COLUMNS = ["direction", "start", "extreme", "end", "move", "return", "confirmed"]


# ------------------------------------------------------------------------------------------
# Episodes from prices (pure pandas)
# ------------------------------------------------------------------------------------------


def _check_close(close) -> pd.Series:
    if not isinstance(close, pd.Series):
        raise TypeError(
            f"close must be a pandas Series indexed by date, not {type(close).__name__}"
        )
    if not isinstance(close.index, pd.DatetimeIndex):
        raise ValueError("close must be indexed by a DatetimeIndex")
    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise ValueError("close must have sorted, unique dates")
    values = close.to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise ValueError(
            f"close must be finite and > 0; first bad value on {close.index[bad.argmax()].date()}"
        )
    return close


def _check_threshold(name, value):
    if not (isinstance(value, int | float) and 0 < value < 10):
        raise ValueError(f"{name} must be a positive fraction such as 0.10, got {value!r}")


def detect_episodes(close: pd.Series, *, drawdown: float = 0.10, runup: float = 0.10):
    """Selloffs and rallies of a close series, dated at their turning points.

    The series is cut into alternating swings by a zig-zag with asymmetric thresholds: a
    running peak becomes a confirmed **peak** once the close falls ``drawdown`` (a fraction)
    below it, and a running trough becomes a confirmed **trough** once the close rises
    ``runup`` above it. Before the first confirmation the running maximum and minimum are
    taken from the first day. A *selloff* runs from a peak to the next trough (its move
    ``close[trough] / close[peak] - 1 <= -drawdown``); a *rally* from a trough to the next
    peak (move ``>= runup``). The last swing, whose turning point has not yet been confirmed
    by the opposite move, is reported with ``confirmed = False`` and ends at its extreme so far.

    Parameters
    ----------
    close : pandas.Series
        Positive closes indexed by sorted, unique dates. Not modified.
    drawdown, runup : float
        Fractional thresholds (0.10 = 10%).

    Returns
    -------
    pandas.DataFrame
        One row per episode in time order, columns ``direction`` (``"selloff"``/``"rally"``),
        ``start`` (the turning point where the move starts), ``extreme`` (trough of a selloff,
        peak of a rally), ``end`` (= ``extreme``), ``move`` and ``return`` (both
        ``close[end] / close[start] - 1``), ``confirmed``.
    """
    close = _check_close(close)
    _check_threshold("drawdown", drawdown)
    _check_threshold("runup", runup)
    c = close.to_numpy(dtype=np.float64)
    turns: list[int] = []
    i_hi = i_lo = 0
    mode = None
    for t in range(1, len(c)):
        if mode is None:
            if c[t] > c[i_hi]:
                i_hi = t
            if c[t] < c[i_lo]:
                i_lo = t
            if c[t] <= c[i_hi] * (1 - drawdown):
                turns.append(i_hi)
                mode, i_lo = "down", t
            elif c[t] >= c[i_lo] * (1 + runup):
                turns.append(i_lo)
                mode, i_hi = "up", t
        elif mode == "down":
            if c[t] < c[i_lo]:
                i_lo = t
            elif c[t] >= c[i_lo] * (1 + runup):
                turns.append(i_lo)
                mode, i_hi = "up", t
        else:
            if c[t] > c[i_hi]:
                i_hi = t
            elif c[t] <= c[i_hi] * (1 - drawdown):
                turns.append(i_hi)
                mode, i_lo = "down", t
    rows = []
    if mode is not None:
        ends = turns[1:] + [i_lo if mode == "down" else i_hi]
        for k, (a, b) in enumerate(zip(turns, ends, strict=True)):
            move = c[b] / c[a] - 1.0
            rows.append({
                "direction": SELLOFF if move < 0 else RALLY,
                "start": close.index[a], "extreme": close.index[b], "end": close.index[b],
                "move": move, "return": move, "confirmed": k < len(turns) - 1,
            })
    return pd.DataFrame(rows, columns=_COLUMNS)


def _windows_frame(windows) -> pd.DataFrame:
    if isinstance(windows, pd.DataFrame):
        missing = {"start", "end"} - set(windows.columns)
        if missing:
            raise ValueError(
                f"the windows DataFrame needs columns start and end; missing {sorted(missing)}"
            )
        frame = windows.copy()
    else:
        try:
            pairs = [tuple(w) for w in windows]
        except TypeError:
            raise TypeError("windows must be a DataFrame or a list of (start, end) pairs") from None
        if any(len(p) != 2 for p in pairs):
            raise ValueError("each window must be a (start, end) pair")
        frame = pd.DataFrame(pairs, columns=["start", "end"])
    try:
        frame["start"] = pd.to_datetime(frame["start"])
        frame["end"] = pd.to_datetime(frame["end"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"window dates could not be read: {exc}") from None
    bad = frame["end"] < frame["start"]
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise ValueError(f"window {i} ends before it starts ({frame['start'].iloc[i].date()} > "
                         f"{frame['end'].iloc[i].date()})")
    return frame.reset_index(drop=True)


def window_episodes(close: pd.Series, windows) -> pd.DataFrame:
    """Episodes over user-given date windows.

    For each window ``[start, end]`` (inclusive; snapped to the first and last dates of
    ``close`` inside it) the direction is that of the larger move inside the window: the
    largest drawdown ``min_t close_t / max_{u<=t} close_u - 1`` against the largest run-up
    ``max_t close_t / min_{u<=t} close_u - 1``, compared in log size. ``extreme`` is the trough
    of that drawdown (selloff) or the peak of that run-up (rally), ``move`` its size, and
    ``return = close[end] / close[start] - 1`` over the whole window.

    Parameters
    ----------
    close : pandas.Series
        Positive closes indexed by sorted, unique dates. Not modified.
    windows : list of (start, end) or pandas.DataFrame with ``start``, ``end`` columns
        Other DataFrame columns (e.g. ``episode``) are kept.

    Returns
    -------
    pandas.DataFrame
        Columns as :func:`detect_episodes` (``confirmed`` is True), plus extra window columns.

    Raises
    ------
    ValueError
        If a window has no date of ``close`` inside it.
    """
    close = _check_close(close)
    frame = _windows_frame(windows)
    rows = []
    for i, w in frame.iterrows():
        part = close.loc[w["start"]:w["end"]]
        if part.empty:
            raise ValueError(
                f"window {i} ({w['start'].date()} .. {w['end'].date()}) has no trading day in "
                f"the data ({close.index[0].date()} .. {close.index[-1].date()})"
            )
        c = part.to_numpy(dtype=np.float64)
        dd = c / np.maximum.accumulate(c) - 1.0
        ru = c / np.minimum.accumulate(c) - 1.0
        i_dd, i_ru = int(np.argmin(dd)), int(np.argmax(ru))
        rally = np.log1p(ru[i_ru]) > -np.log1p(dd[i_dd])
        j = i_ru if rally else i_dd
        rows.append({
            "direction": RALLY if rally else SELLOFF,
            "start": part.index[0], "extreme": part.index[j], "end": part.index[-1],
            "move": ru[i_ru] if rally else dd[i_dd], "return": c[-1] / c[0] - 1.0,
            "confirmed": True,
        })
    out = pd.DataFrame(rows, columns=_COLUMNS)
    extra = [c for c in frame.columns if c not in ("start", "end")]
    return pd.concat([frame[extra], out], axis=1)[extra + _COLUMNS]


# ------------------------------------------------------------------------------------------
# Scores from path samples (plain arrays)
# ------------------------------------------------------------------------------------------


def compulsion_scores(
    paths: np.ndarray,
    draw_of_sample: np.ndarray,
    days: np.ndarray,
    *,
    min_share: float = 0.5,
    lead_in: int = 5,
    quantiles: tuple[float, float] = (0.05, 0.95),
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
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}")
    if not isinstance(lead_in, int | np.integer) or lead_in < 0:
        raise ValueError(f"lead_in must be an integer >= 0, got {lead_in!r}")
    sub = paths[:, days]
    need = min_share * days.size
    ff = sub == FORCED_FLOW
    n_ff = ff.sum(axis=1)
    comp = n_ff >= need - 1e-9
    mp_or_worse = (sub >= MARGIN_PRESSURE).sum(axis=1) >= need - 1e-9
    _, group = np.unique(np.asarray(draw_of_sample), return_inverse=True)
    counts = np.bincount(group)
    q = np.asarray(quantiles, dtype=np.float64)

    def per_draw_q(event):
        per = np.bincount(group, weights=event.astype(np.float64)) / counts
        return np.quantile(per, q)

    has = n_ff > 0
    if has.any():
        p_lead = float(_lead_in(paths[has], days[np.argmax(ff[has], axis=1)], lead_in).mean())
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


def _lead_in(paths: np.ndarray, first: np.ndarray, lead_in: int) -> np.ndarray:
    """Per path: is there margin pressure in the ``lead_in`` days before the onset of the
    forced-flow spell that contains day ``first``? (bool array, one per row of ``paths``)."""
    rows = np.arange(paths.shape[0])
    onset = first.astype(np.int64).copy()
    active = onset > 0
    active[active] = paths[rows[active], onset[active] - 1] == FORCED_FLOW
    while active.any():  # walk back to the first day of the forced-flow spell
        onset[active] -= 1
        active &= onset > 0
        active[active] = paths[rows[active], onset[active] - 1] == FORCED_FLOW
    if lead_in == 0:
        return np.zeros(paths.shape[0], dtype=bool)
    back = onset[:, None] - np.arange(1, lead_in + 1)[None, :]
    valid = back >= 0
    stage = paths[rows[:, None], np.where(valid, back, 0)]
    return ((stage == MARGIN_PRESSURE) & valid).any(axis=1)


def label_episode(direction: str, p_compulsion: float, *, hi: float = 0.7,
                  lo: float = 0.3) -> str:
    """The episode label from its direction and ``p_compulsion`` (see :data:`LABELS`)."""
    if direction not in (SELLOFF, RALLY):
        raise ValueError(f"direction must be 'selloff' or 'rally', got {direction!r}")
    if not (0 <= lo < hi <= 1):
        raise ValueError(f"need 0 <= lo < hi <= 1, got lo={lo!r}, hi={hi!r}")
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
        row.update(compulsion_scores(arr, draw_id, days, min_share=min_share, lead_in=lead_in))
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
