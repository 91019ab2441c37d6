"""Does a batch of new rows continue the fit's series? Checks run by :func:`update`.

An update appends days to a fitted series, so rows from another market or a re-based file
would silently move the stage probabilities (an S&P 500 fit fed VW rows jumps from
``p_compulsion`` 0.003 to 0.927). :func:`check_market` and :func:`check_continuity` refuse:

* another market: the fit's ``source`` attribute and ``new_rows`` both name bundled datasets,
  and different ones;
* a calendar gap: :data:`SEAM_MAX_BUSINESS_DAYS` (10) or more business days between the last
  stored date and the first new row (exchanges have not closed that long: the 9/11 closure
  was 5), since the rows in between would be missing from the trailing windows and filter;
* a price level break: ``|log(first new close / last stored close)|`` above
  ``max(20 sd sqrt(b), log 3)``, with ``sd`` the robust (MAD) sd of the last 252 stored daily
  log returns of the close (floored at 0.1%) and ``b`` the business days between the two
  closes; the ``log 3`` floor lets a real move as large as the VW squeeze (+90% in a day) pass;
* a volume level break: the median of the first (up to 5) new volumes more than 100 times
  above or below the median of the last 63 stored trading-day volumes.

Each refusal says what was compared and how to override (``check_seam=False``).

:func:`split_repeated` is not a heuristic and has no override: new rows may repeat stored days
(a whole re-downloaded history), and those are compared with what the fit stored, so a
revised or re-based history is refused instead of being filtered as if it continued the old
one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from stressflow.data import DataError
from stressflow.data.bundled import DATASETS
from stressflow.data.checks import BAD_TICK_SD
from stressflow.data.errors import format_dates

__all__ = ["REPEAT_RTOL", "SEAM_MAX_BUSINESS_DAYS", "check_continuity", "check_market",
           "differing", "split_repeated"]

#: First new row this many business days or more after the last stored date: refused.
SEAM_MAX_BUSINESS_DAYS = 10
_LEVEL_FLOOR = float(np.log(3.0))
_VOLUME_FACTOR = 100.0
#: Relative tolerance of the comparison of a repeated day with the stored one (a file printed
#: with 7 significant digits passes; a revised volume or a dividend re-basing does not).
REPEAT_RTOL = 1e-6
_OVERRIDE = "if the rows are right, pass check_seam=False (CLI: --no-seam-check)"


def check_market(fit, new_rows) -> None:
    """Refuse ``new_rows`` naming a bundled dataset other than the fit's bundled source."""
    source = str(fit.attrs.get("source", ""))
    if isinstance(new_rows, str) and new_rows in DATASETS and source in DATASETS:
        if new_rows != source:
            raise DataError(
                f"the fit is of the bundled dataset {source!r} but the new rows are "
                f"{new_rows!r}, another market; an update only continues the fitted series"
            )


def check_continuity(stored: pd.DataFrame, new: pd.DataFrame) -> None:
    """Refuse new rows that do not continue ``stored`` (calendar, price level, volume level).

    ``stored`` and ``new`` are validated price frames (index ``date``) with ``close`` and
    ``volume``; ``new`` starts after ``stored`` ends.
    """
    last, first = stored.index[-1], new.index[0]
    days = int(np.busday_count(last.date(), first.date()))
    if days >= SEAM_MAX_BUSINESS_DAYS:
        raise DataError(
            f"the new rows start on {first:%Y-%m-%d}, {days} business days after the fit's last "
            f"date {last:%Y-%m-%d}: the rows in between are missing (an update must continue "
            f"the series without a gap of {SEAM_MAX_BUSINESS_DAYS} or more business days); "
            f"add them, or {_OVERRIDE}"
        )
    old_close = stored.loc[(stored["volume"] > 0).to_numpy(), "close"].dropna()
    new_close = new.loc[(new["volume"] > 0).to_numpy(), "close"].dropna()
    if len(old_close) >= 2 and len(new_close):
        returns = np.diff(np.log(old_close.to_numpy(dtype="float64")))[-252:]
        sd = max(1.4826 * float(np.median(np.abs(returns))), 1e-3)
        b = max(1, int(np.busday_count(old_close.index[-1].date(), new_close.index[0].date())))
        jump = float(np.log(new_close.iloc[0] / old_close.iloc[-1]))
        bound = max(BAD_TICK_SD * sd * np.sqrt(b), _LEVEL_FLOOR)
        if abs(jump) > bound:
            raise DataError(
                f"the first new close {float(new_close.iloc[0]):.6g} on "
                f"{new_close.index[0]:%Y-%m-%d} is {np.exp(abs(jump)):.3g} times "
                f"{'above' if jump > 0 else 'below'} the last stored close "
                f"{float(old_close.iloc[-1]):.6g} on {old_close.index[-1]:%Y-%m-%d} "
                f"({abs(jump) / sd:.0f} robust daily sd; the bound is {bound / sd:.0f}): the new "
                "rows look like another market or a re-based series, not a continuation of "
                f"the fit's; {_OVERRIDE}"
            )
    old_volume = stored["volume"].to_numpy(dtype="float64")
    old_volume = old_volume[old_volume > 0][-63:]
    new_volume = new["volume"].to_numpy(dtype="float64")
    new_volume = new_volume[new_volume > 0][:5]
    if len(old_volume) and len(new_volume):
        ratio = float(np.median(new_volume) / np.median(old_volume))
        if not 1.0 / _VOLUME_FACTOR <= ratio <= _VOLUME_FACTOR:
            raise DataError(
                f"the new rows' volume (median {float(np.median(new_volume)):.6g} over their "
                f"first {len(new_volume)} trading days from {first:%Y-%m-%d}) is {ratio:.3g} "
                f"times the fit's (median {float(np.median(old_volume)):.6g} over its last "
                f"{len(old_volume)} trading days): beyond a factor {_VOLUME_FACTOR:g}, the "
                f"rows look like another market or other units; {_OVERRIDE}"
            )


def differing(old: np.ndarray, new: np.ndarray, rtol: float, atol: float = 0.0) -> np.ndarray:
    """Boolean mask of the cells where ``new`` differs from ``old`` (same shape): beyond
    ``np.isclose(new, old, rtol, atol)``, a missing value equal only to a missing value."""
    same = np.isclose(new, old, rtol=rtol, atol=atol) | (np.isnan(new) & np.isnan(old))
    return ~same


def split_repeated(stored: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Split validated ``new`` rows into the days after ``stored`` and the days it repeats.

    Rows dated inside ``stored``'s dates (first to last) must be exactly the stored days with
    the stored values (the columns both hold; relative tolerance :data:`REPEAT_RTOL`, a missing
    value equal only to a missing value); rows dated before ``stored``'s first date precede the
    fit and are not compared.

    Returns ``(after, n_repeated, n_earlier)``: the rows dated after the last stored date, the
    number of repeated days checked equal and the number of earlier rows left out.

    Raises
    ------
    DataError
        A day inside the stored range that the fit does not hold or that the new rows lack, or
        a repeated day whose values differ (the message names the first date and column and
        both values).
    """
    first, last = stored.index[0], stored.index[-1]
    after = new.loc[new.index > last]
    inside = new.loc[(new.index >= first) & (new.index <= last)]
    n_earlier = int((new.index < first).sum())
    if not len(inside):
        return after, 0, n_earlier
    # the stored days the file covers: up to the last stored day if it goes on past it, else
    # up to its own last day (an older download adds nothing, and is only compared)
    span = stored.loc[inside.index[0]:(last if len(after) else inside.index[-1])]
    extra = inside.index.difference(span.index)
    lacking = span.index.difference(inside.index)
    if len(extra) or len(lacking):
        which = (f"{len(extra)} day(s) the fit does not hold: {format_dates(extra)}" if len(extra)
                 else f"it lacks {len(lacking)} stored day(s): {format_dates(lacking)}")
        raise DataError(
            f"the new rows repeat stored days from {inside.index[0]:%Y-%m-%d} to "
            f"{inside.index[-1]:%Y-%m-%d} but not the same days ({which}); the file revises the "
            f"history the fit used: refit on it, or pass only the days after {last:%Y-%m-%d}"
        )
    columns = [c for c in stored.columns if c in inside.columns]
    old = span[columns].to_numpy(dtype="float64")
    rep = inside[columns].to_numpy(dtype="float64")
    diff = differing(old, rep, REPEAT_RTOL)
    if diff.any():
        rows, cols = np.nonzero(diff)
        day, col = span.index[rows[0]], columns[cols[0]]
        given, kept = rep[rows[0], cols[0]], old[rows[0], cols[0]]
        raise DataError(
            f"the new rows repeat {len(inside)} stored day(s) ({inside.index[0]:%Y-%m-%d} .. "
            f"{inside.index[-1]:%Y-%m-%d}) but {len(np.unique(rows))} of them differ from what "
            f"the fit stored (first: column {col!r} on {day:%Y-%m-%d}, {given:.10g} new against "
            f"{kept:.10g} stored; relative tolerance "
            f"{REPEAT_RTOL:g}): the file revises or re-bases the history the fit used; refit on "
            f"it, or pass only the days after {last:%Y-%m-%d}"
        )
    return after, len(inside), n_earlier
