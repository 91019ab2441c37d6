r"""Plausibility checks on validated prices: absurd magnitudes and suspected bad ticks.

Absurd magnitudes (an error). No traded price lies outside ``[PRICE_MIN, PRICE_MAX]`` and no
daily volume exceeds ``VOLUME_MAX``; a cell beyond them (e.g. ``1e300``, a unit or parsing
error) raises :class:`~stressflow.data.DataError` naming the column and the date.

Suspected bad ticks (a counted treatment). A bad tick is a price recorded wrongly on one day
(a misplaced decimal point, a price in other units). A trading row (``volume > 0``) is a
suspected bad tick when either

* its close jumps and jumps back: with :math:`r_t = \log(c_t / c_{t-1})` over consecutive
  trading rows with a close, :math:`|r_t| > K \hat\sigma_t` and :math:`|r_{t+1}| > K
  \hat\sigma_t` with :math:`K =` :data:`BAD_TICK_SD` (20), :math:`r_{t+1}` of the opposite
  sign, giving back at least half the move (:math:`|r_t + r_{t+1}| < |r_t| / 2`); here
  :math:`\hat\sigma_t = \max(1.4826\,\operatorname{median}\{|r_{t-k}| : 1 \le k \le 252\},
  10^{-3})` is a robust (MAD) daily sd of the previous 252 returns (at least 20; before that,
  of the first 252 returns); or
* its high is above :data:`RANGE_FACTOR` (4) times its close, or its low below the close
  divided by 4 (a wrong high or low alone).

Suspected unadjusted splits (a warning). A share split (or reverse split) in prices that are
not split-adjusted looks like a one-day move at a simple ratio that stays, with share volume
moving by about the same ratio the other way for good (the dollar volume is unchanged). Left
in, it gives the volume observable months of false abnormal volume (its 63-day baseline is
pre-split) and impact one false spike. A trading row is a suspected split when its close moves
by more than :data:`SPLIT_SD` (10) robust sd and is not a bad tick (the next day keeps at
least half the move; on the last row this is not known and not required),
``log(c_{t-1} / c_t)`` lies within 3 robust sd (at least :data:`SPLIT_TOLERANCE`, 0.02) of the
log of a ratio in :data:`SPLIT_RATIOS` or of its reciprocal (the split day has its own move on
top of the ratio), the day's own range is under a quarter of the move (it traded at the new
level all day; a missing range does not rule a split out), and, once at least 3 rows follow
it, the median log volume of the (up to) 20 rows from it on differs from that of the 20
before by the log ratio to within ``max(0.5, 0.5 |log ratio|)`` (month-to-month swings of
share volume are of that size); with fewer rows after it
(the end of the data, a daily ``update``) the price criteria alone decide. A move that is
real but looks like this (a gap to a third of the price on a day that then trades flat, with
share volume up threefold) is flagged as well, which is why this is a warning: flagged days
are counted (``DataReport.n_suspected_splits``) and warned about, and the data are left as
given (no ratio is applied on a guess). A split on a row without volume is dated to the next
traded row. None flagged on the bundled files; simulated splits in the GME file (4:1, 2:1,
3:2, 1:10, one on the last row) are, a gap down to a third with volume up by half is not
(``tests/test_data_plausibility.py``).

The close rule looks one day ahead (a tick is only recognisable once the price comes back), so
a bad close on the last row of the data cannot be flagged.

False-positive rate on the bundled files: zero days flagged of 9,076 (S&P 500), 6,528 (SPY),
5,321 (VW) and 4,250 (GME). The largest value of :math:`\min(|r_t|, |r_{t+1}|) /
\hat\sigma_t` over reversing day pairs is 7.1 (S&P 500, 2018-03-23), 6.7 (SPY, 2011-08-08),
3.7 (GME, 2008-10-13) and 9.5 (VW, 2008-09-18); the largest high/close and close/low factors
are 1.26 and 1.11 (S&P 500), 1.11 and 1.13 (SPY), 1.21 and 1.18 (GME), 1.58 and 1.60 (VW,
2008-10-07 and 2008-10-27). The VW short squeeze of October 2008 (+90% on 2008-10-27, 55 robust
sd) is a real move that did not reverse the next day (reversal score 2.6 at most that month)
and is not flagged; it was checked after K was set, not used to choose it. A 1000x tick is
about 1,000 robust sd on the S&P 500 and 360-410 on GME and VW; a 2x tick about 100.

``prepare(..., bad_ticks=)`` chooses the treatment: ``"mask"`` (default) sets the flagged
day's ``high``, ``low`` and ``close`` to missing before the observables are computed (so that
day's spread, volatility and impact and the next day's impact, whose return spans the tick,
are missing), ``"keep"`` uses the prices as given, ``"raise"`` raises ``DataError``. Flagged
days are counted in ``DataReport.n_bad_ticks`` and warned about in every mode.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import DataError, format_dates

__all__ = [
    "BAD_TICK_MODES",
    "BAD_TICK_SD",
    "PRICE_MAX",
    "PRICE_MIN",
    "RANGE_FACTOR",
    "VOLUME_MAX",
    "SPLIT_RATIOS",
    "SPLIT_SD",
    "SPLIT_TOLERANCE",
    "check_magnitudes",
    "find_bad_ticks",
    "find_splits",
    "treat_bad_ticks",
]

#: Smallest and largest plausible price (any currency unit).
PRICE_MIN: float = 1e-6
PRICE_MAX: float = 1e9
#: Largest plausible daily volume (shares or contracts).
VOLUME_MAX: float = 1e15
#: Robust standard deviations both legs of a bad tick must exceed.
BAD_TICK_SD: float = 20.0
#: A high above this multiple of the close, or a low below the close divided by it, is a bad tick.
RANGE_FACTOR: float = 4.0
#: Treatments of suspected bad ticks accepted by ``prepare(..., bad_ticks=)``.
BAD_TICK_MODES: tuple[str, ...] = ("mask", "keep", "raise")
#: Split ratios recognised (new shares per old share), and their reciprocals (reverse splits).
SPLIT_RATIOS: tuple[float, ...] = (2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 15.0, 20.0, 1.5, 2.5,
                                   4.0 / 3.0, 1.25)
#: Smallest tolerance of |log(c_{t-1} / c_t) - log(ratio)| for a suspected split (the
#: tolerance is 3 robust sd of the daily return, at least this).
SPLIT_TOLERANCE: float = 0.02
#: Robust sds the close must move by to be a suspected split (the ratio, range and volume
#: criteria do the rest of the screening).
SPLIT_SD: float = 10.0
_SPLIT_VOLUME_ROWS = 20
_SPLIT_MIN_AFTER = 3
_SD_WINDOW = 252
_SD_MIN_PERIODS = 20
_SD_FLOOR = 1e-3
_MAD_TO_SD = 1.4826


def _fmt(value: float) -> str:
    return f"{float(value):.6g}"


def check_magnitudes(prices: pd.DataFrame) -> None:
    """Raise DataError if a price or volume cell is beyond the plausible bounds."""
    for column in ("high", "low", "close", "volume"):
        values = prices[column].to_numpy(dtype="float64")
        if column == "volume":
            bad = values > VOLUME_MAX
            bound = f"above {VOLUME_MAX:.0e}"
        else:
            bad = (values > PRICE_MAX) | (values < PRICE_MIN)
            bound = f"outside [{PRICE_MIN:.0e}, {PRICE_MAX:.0e}]"
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"column {column!r} has an absurd value {_fmt(values[i])} on "
                f"{prices.index[i]:%Y-%m-%d} ({int(bad.sum())} such row(s)); values {bound} "
                "are data errors (units, a misplaced decimal point): fix or remove the row"
            )


def _log_returns(close: pd.Series) -> pd.Series:
    """``r_t = log(c_t / c_{t-1})`` over consecutive rows of ``close`` (NaN on the first)."""
    values = np.log(close.to_numpy(dtype="float64"))
    return pd.Series(np.r_[np.nan, np.diff(values)], index=close.index)


def _robust_sd(returns: pd.Series) -> pd.Series:
    """Causal MAD-based sd of the previous returns (first-year value during warm-up)."""
    magnitude = returns.abs()
    trailing = magnitude.shift(1).rolling(_SD_WINDOW, min_periods=_SD_MIN_PERIODS).median()
    first = magnitude.iloc[:_SD_WINDOW].median()
    first = first if np.isfinite(first) else 0.0
    return (_MAD_TO_SD * trailing.fillna(first)).clip(lower=_SD_FLOOR)


def find_bad_ticks(prices: pd.DataFrame) -> pd.Series:
    """Boolean Series over ``prices.index``: True on suspected bad-tick days (module rule)."""
    flagged = pd.Series(False, index=prices.index)
    traded = prices.loc[(prices["volume"] > 0).to_numpy()]
    close = traded["close"]
    off_range = (traded["high"] > RANGE_FACTOR * close) | (traded["low"] < close / RANGE_FACTOR)
    flagged.loc[off_range.index[off_range.to_numpy(dtype=bool)]] = True
    x = close.dropna()
    if len(x) < 3:
        return flagged
    r = _log_returns(x)
    r_next = r.shift(-1)
    bound = BAD_TICK_SD * _robust_sd(r)
    hit = (
        (r.abs() > bound)
        & (r_next.abs() > bound)
        & (np.sign(r) != np.sign(r_next))
        & ((r + r_next).abs() < 0.5 * r.abs())
    )
    flagged.loc[hit.index[hit.to_numpy(dtype=bool)]] = True
    return flagged


def find_splits(prices: pd.DataFrame) -> pd.Series:
    """Float Series over ``prices.index``: the split ratio ``c_{t-1} / c_t`` (> 1: a split,
    < 1: a reverse split) on suspected unadjusted splits (module rule), NaN elsewhere."""
    found = pd.Series(np.nan, index=prices.index)
    traded = prices.loc[(prices["volume"] > 0).to_numpy()].dropna(subset=["close"])
    if len(traded) < 3:
        return found
    r = _log_returns(traded["close"])
    r_next = r.shift(-1)
    sd = _robust_sd(r)
    # the next day keeps at least half the move (at the end of the data: not known, kept)
    big = (r.abs() > SPLIT_SD * sd) & ~((r + r_next).abs() < 0.5 * r.abs())
    ratios = np.log(np.r_[SPLIT_RATIOS, 1.0 / np.asarray(SPLIT_RATIOS)])
    log_volume = np.log(traded["volume"].astype("float64"))
    rows = _SPLIT_VOLUME_ROWS
    before = log_volume.shift(1).rolling(rows, min_periods=rows // 2).median()
    after = log_volume[::-1].rolling(rows, min_periods=_SPLIT_MIN_AFTER).median()[::-1]
    day_range = np.log(traded["high"] / traded["low"])
    for i in np.flatnonzero(big.to_numpy(dtype=bool)):
        move = -float(r.iloc[i])  # log(c_{t-1} / c_t)
        nearest = float(ratios[np.argmin(np.abs(ratios - move))])
        if abs(move - nearest) >= max(SPLIT_TOLERANCE, 3.0 * float(sd.iloc[i])):
            continue
        if day_range.iloc[i] >= 0.25 * abs(move):  # a missing range does not rule it out
            continue
        shift = float(after.iloc[i] - before.iloc[i])
        if np.isfinite(shift) and abs(shift - nearest) > max(0.5, 0.5 * abs(nearest)):
            continue  # share volume did not move by about the ratio
        found.loc[traded.index[i]] = float(np.exp(move))
    return found


def treat_bad_ticks(prices: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, pd.Series]:
    """Flag suspected bad ticks and apply ``mode``; returns (new prices, flags).

    ``"mask"``: a new frame with ``high, low, close`` set to NaN on the flagged days;
    ``"keep"``: the prices unchanged; ``"raise"``: DataError naming the first flagged date.
    """
    if mode not in BAD_TICK_MODES:
        raise ValueError(f"bad_ticks must be one of {BAD_TICK_MODES}, got {mode!r}")
    flags = find_bad_ticks(prices)
    if not flags.any():
        return prices, flags
    if mode == "raise":
        dates = flags.index[flags.to_numpy()]
        raise DataError(
            f"suspected bad tick(s) on {format_dates(dates)}: a price jumps by more than "
            f"{BAD_TICK_SD:g} robust sd and jumps back the next day; fix the rows, or pass "
            "bad_ticks='mask' (drop those prices) or 'keep'"
        )
    if mode == "mask":
        prices = prices.copy()
        prices.loc[flags.to_numpy(), ["high", "low", "close"]] = np.nan
    return prices, flags


def check_usable(prices: pd.DataFrame, window: np.ndarray) -> None:
    """Raise DataError naming the real cause when no observable can be computed in the window.

    The causes checked are zero volume on every row (no trading day: zero volume marks a
    non-trading row) and ``high == low`` on every trading row with a range (a constant price
    or close-only data: spread and volatility need a daily high-low range).
    """
    rows = prices.loc[window]
    span = f"{rows.index[0]:%Y-%m-%d} .. {rows.index[-1]:%Y-%m-%d}"
    traded = rows.loc[(rows["volume"] != 0).to_numpy()]
    if (traded["volume"].isna()).all():
        raise DataError(
            f"column 'volume' is 0 (or empty) on every row of the window {span}: zero volume "
            "marks a non-trading day, so there is no trading day to compute observables from; "
            "check the volume column (the column mapping, or a source without volume)"
        )
    ranged = traded.dropna(subset=["high", "low"])
    if len(ranged) and (ranged["high"] == ranged["low"]).all():
        raise DataError(
            f"columns 'high' and 'low' are equal on every trading row of the window {span} "
            "(a constant price or close-only data): the spread and volatility observables "
            "need a daily high-low range"
        )
    close = traded["close"].dropna()
    if len(close) > 1 and (close == close.iloc[0]).all():
        raise DataError(
            f"column 'close' is constant ({_fmt(close.iloc[0])}) on every trading row of the "
            f"window {span}: a constant price has no returns for the impact observable"
        )
