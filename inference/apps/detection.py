"""Episodes from prices alone (pure pandas): selloffs and rallies in a close series, or windows
given by the user. Scoring them for compulsion is :mod:`stressflow.inference.apps.episodes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from stressflow.models.messages import shown

__all__ = ["SELLOFF", "RALLY", "detect_episodes", "window_episodes"]

SELLOFF, RALLY = "selloff", "rally"
_COLUMNS = ["direction", "start", "extreme", "end", "move", "return", "confirmed"]


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
    """``drawdown`` in (0, 1): a fall of 100% or more cannot happen to a positive price;
    ``runup`` in (0, 10), a rise of up to 1,000%."""
    top = 1.0 if name == "drawdown" else 10.0
    if (isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number)
            or not 0 < value < top):
        raise ValueError(f"{name} must be a fraction in (0, {top:g}) such as 0.10, got "
                         f"{shown(value)}")


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
