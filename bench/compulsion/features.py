r"""Candidate observables for the compulsion screen, all causal (the value at t uses rows <= t).

Every observable is a raw (unstandardised) column on the market's full trading-date index;
:func:`standardise` puts them on the scale of a fitting window (mean 0, sd 1 over that
window, as :class:`stressflow.data.transform.FeatureTransform` does), and the same centre and
scale are applied to every other date (no look-ahead in the out-of-time test).

Notation: ``h, l, c, v`` high, low, close, volume; ``r_t = log(c_t / c_{t-1})``;
``med_W(x)_t`` the median of ``x_{t-W}..x_{t-1}`` (previous ``W`` rows, excluding ``t``, at
least ``W // 3`` values), as in :mod:`stressflow.data.observables`.

Built-in four (from :func:`stressflow.data.prepare`, formulas in
:mod:`stressflow.data.observables`): ``spread`` (log Abdi-Ranaldo 21-day estimate),
``volatility`` (log Parkinson), ``volume`` (log volume minus ``med_63``), ``impact`` (log
Amihud ratio minus ``med_252``).

Surprise, not level (a sudden break differs from a persistent high-volatility regime):

- ``vol_surprise = volatility_t - med_252(volatility)_t``;
- ``vol_surprise63 = volatility_t - med_63(volatility)_t``;
- ``vol_surprise_floor = volatility_t - max(med_252, med_1260)(volatility)_t`` and
  ``vol_surprise1260 = volatility_t - med_1260(volatility)_t``;
- ``spread_surprise = spread_t - med_252(spread)_t``;
- ``impact_surprise = impact_t - med_63(impact)_t`` (impact is already relative to a 252-day
  median; this is its break against the last quarter).

Volume-return reversal (Campbell, Grossman & Wang 1993, QJE 108(4); Llorente, Michaely, Saar &
Wang 2002, RFS 15(4)): ``ret = r_t`` and the regressors ``ret_lag = r_{t-1}``,
``vret_lag = V_{t-1} r_{t-1}`` with ``V`` = the ``volume`` observable (log abnormal volume).
They are used by the autoregressive emission of :mod:`bench.compulsion.em`
(``r_t = b0_k + b1_k r_{t-1} + b2_k V_{t-1} r_{t-1} + e_t``, ``e_t ~ N(0, s_k^2)``); ``b2_k < 0``
is the liquidity-driven (reversing) signature. Simple observable form:
``reversal_t = -(r_t r_{t-1}) / sd63_t^2`` with ``sd63_t`` the sd of ``r`` over the previous
63 rows: high when today's move undoes yesterday's.

Funding and credit strain (files in ``/work/shared/data/``, joined on the exact date; missing
where the series has no value): ``ted = log(TED spread %)`` (1986-2017),
``ted_chg5 = ted_t - ted_{t-5}``; ``hy = log(HY OAS %)`` (1997-2018),
``hy_chg5 = hy_t - hy_{t-5}``; ``baa = log(BAA-10y %)`` (1986-2017),
``baa_chg5 = baa_t - baa_{t-5}``; ``*_abs5 = |*_chg5|`` (credit turbulence in either direction,
so that a stage is not defined by the direction of the move). Lags count rows of the joined
series on the market's dates.

Stock-bond co-movement (a dash for cash sells both): with ``dy_t`` the daily change of the
10-year Treasury yield (DGS10, percentage points), ``stock_bond_t`` = the mean over the last 5
rows of ``-(r_t / sd63(r)_t) (dy_t / sd63(dy)_t)``: positive when stock and bond PRICES move
the same way (both sold, or both bought), negative in a flight to quality.

Implied volatility (bundled ``vix_daily_1990_2018.csv``, close; missing before 1990):
``vix_surprise_t = log VIX_t - med_252(log VIX)_t`` (a break in implied volatility against its
trailing year) and ``vrp_t = log VIX_t - log(100 sqrt(252) rv21_t)`` with ``rv21_t`` the sd of
``r`` over the last 21 rows (implied against realised: fear priced beyond the moves seen).

Speed of the move, direction-free: ``speed5_t = |log(c_t / c_{t-5})| / (sqrt(5) sd63_t)``.

Intraday path: ``whipsaw_t = log(max(log(h_t/l_t), 1e-4)) - log(max(|r_t|, 1e-4))``, the
day's range against its close-to-close move (clipped to [-3, 6]): high when the price went far
and came back. Where the day closes in its range (close location value, ``clv_t = (2 c_t - h_t
- l_t) / (h_t - l_t)`` in [-1, 1], missing when ``h_t = l_t``): ``close_pressure_t = sign(r_t)
clv_t`` is +1 when the day closed at its extreme in the direction of its move (the pressure
lasted into the close, as price-insensitive orders that must be done by the close would make
it; mechanical end-of-day flows: Baltussen, Da, Lammers & Martens 2021, JFE 142(1), hedging
demand and intraday momentum) and -1 when the move was undone within the day; direction-free,
so a squeeze that closes at its high scores like a crash that closes at its low.
``close_pressure5`` is its mean over the last 5 rows (at least 3), ``clv_abs5`` the mean of
``|clv_t|``.

The liquid wrapper against its basket (round 13): with ``td_t`` the day's log return of the SPY
ETF (bundled, dividend-adjusted close, 1993-2018) minus the index's,
``etf_gap1_t = log|td_t| - med_252(log|td|)_t`` and ``etf_gap5_t`` the same for the log of the
5-row mean of ``|td|`` (``|td|`` floored at 1 bp). When holders sell what is liquid, the ETF
is sold before the stocks it holds and its price departs from theirs beyond what arbitrage
closes by the close, then comes back (Petajisto 2017, FAJ 73(1); Ben-David, Franzoni &
Moussawi 2018, JF 73(6); SEC staff research note on 2015-08-24). Against its own trailing year,
because the level of ``|td|`` falls about sixfold over 1993-2018 (decimalisation, closing
auctions). Gap openings are NOT used: the bundled S&P 500 open equals the previous close on
most days before 2006 (``data/datasets/SOURCES.md``).

Shorter windows (round 15; the posterior predictive check finds the observables built on
overlapping windows far more persistent inside a stage than the model's independent draws):
``spread5`` and ``spread10``, the library's spread estimate over the trailing 5 or 10 rows
instead of 21 (``prepare(..., spread_window=W)``); ``bond_vol1_surprise_t = log max(|dy_t|,
0.01) - med_252(log max(|dy|, 0.01))_t``, the day's own yield change (floored at one tick, 1 bp,
since the yield is quoted to 0.01 and unchanged on about one day in twelve) against its trailing
year, where the library's ``bond_vol_surprise`` uses the 5-row root mean square.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from stressflow.data import prepare
from stressflow.data.observables import bond_vol_surprise_observable

__all__ = ["SHARED", "US_ONLY", "raw_observables", "standardise"]

#: Folder of the real macro series.
SHARED = Path("/work/shared/data")
#: The library's bundled datasets (VIX).
BUNDLED = Path(__file__).resolve().parents[2] / "data" / "datasets"
#: Observables that exist only for US markets (macro series); dropped for other markets.
US_ONLY = ("ted", "ted_chg5", "hy", "hy_chg5", "baa", "baa_chg5", "ted_abs5", "hy_abs5",
           "baa_abs5", "stock_bond", "vix_surprise", "vrp", "ig", "ig_chg5", "ig_abs5", "move",
           "move_chg5", "move_abs5", "bond_vol_surprise", "move_surprise", "bond_vol21_surprise",
           "bond2_vol_surprise", "etf_gap1", "etf_gap5", "bond_vol1_surprise")

_MACRO = {
    "ted": ("us_ted_spread_daily_1986_2017.csv", "ted_spread_pct"),
    "hy": ("us_hy_oas_daily_1996_2018.csv", "hy_oas_pct"),
    "baa": ("us_baa10y_spread_daily_1986_2017.csv", "baa10y_pct"),
    "ig": ("us_ig_oas_daily_1999_2018.csv", "ig_oas_pct"),
    "move": ("move_index_daily_2002_2018.csv", "move"),
}


def _prev_median(x: pd.Series, window: int) -> pd.Series:
    return x.shift(1).rolling(window, min_periods=max(1, window // 3)).median()


def _prev_sd(x: pd.Series, window: int) -> pd.Series:
    return x.shift(1).rolling(window, min_periods=max(2, window // 3)).std()


def _macro(name: str, index: pd.DatetimeIndex) -> pd.Series:
    file, column = _MACRO[name]
    frame = pd.read_csv(SHARED / file, parse_dates=["date"]).set_index("date")
    values = pd.to_numeric(frame[column], errors="coerce")
    values = values.where(values > 0)
    return np.log(values).reindex(index)


def _bond_surprise(dy: pd.Series, window: int, min_periods: int) -> pd.Series:
    """Half the log of the ``window``-row mean of ``dy**2`` against its trailing-year median
    (the library's ``bond_vol_surprise`` with another window)."""
    b = 0.5 * np.log((dy**2).rolling(window, min_periods=min_periods).mean().clip(lower=1e-8))
    return b - _prev_median(b, 252)


def _vix(index: pd.DatetimeIndex) -> pd.Series:
    frame = pd.read_csv(BUNDLED / "vix_daily_1990_2018.csv", parse_dates=["date"])
    close = pd.to_numeric(frame.set_index("date")["close"], errors="coerce")
    return np.log(close.where(close > 0)).reindex(index)


def _treasury_change(index: pd.DatetimeIndex, column: str = "dgs10") -> pd.Series:
    frame = pd.read_csv(SHARED / "us_treasury_yields_daily_1962_2018.csv", parse_dates=["date"])
    y = pd.to_numeric(frame.set_index("date")[column], errors="coerce").dropna()
    return y.diff().reindex(index)


def raw_observables(market: str, *, macro: bool = True,
                    volume_dropouts: str = "keep") -> pd.DataFrame:
    """Every candidate observable of a bundled market, raw, on its trading dates.

    Parameters
    ----------
    market : str
        Bundled dataset name (``sp500``, ``spy``, ``vw``, ...).
    macro : bool
        Join the US macro series (:data:`US_ONLY` columns); False for non-US markets.
    volume_dropouts : {"keep", "mask"}
        ``prepare``'s treatment of volume dropouts (:mod:`stressflow.data.dropouts`).

    Returns
    -------
    pandas.DataFrame
        Index: the dates of the validated price file with volume > 0; columns: the observables
        named in the module docstring, NaN where missing.
    """
    prepared = prepare(market, volume_dropouts=volume_dropouts)
    prices = prepared.prices
    traded = prices["volume"] > 0
    out = prepared.raw.loc[traded.to_numpy()].copy()
    close = prices.loc[traded.to_numpy(), "close"].astype(float)
    high = prices.loc[traded.to_numpy(), "high"].astype(float)
    low = prices.loc[traded.to_numpy(), "low"].astype(float)
    r = np.log(close).diff()
    out["vol_surprise"] = out["volatility"] - _prev_median(out["volatility"], 252)
    out["vol_surprise63"] = out["volatility"] - _prev_median(out["volatility"], 63)
    # against the higher of the trailing-year and trailing-five-year medians: a return from an
    # abnormally calm year to ordinary volatility is not a break
    out["vol_surprise_floor"] = out["volatility"] - np.maximum(
        _prev_median(out["volatility"], 252), _prev_median(out["volatility"], 1260))
    out["vol_surprise1260"] = out["volatility"] - _prev_median(out["volatility"], 1260)
    out["vol_jump21"] = out["volatility"] - _prev_median(out["volatility"], 21)
    for window in (5, 10, 42, 126):  # the baseline-length sweep of round 5
        out[f"vol_jump{window}"] = out["volatility"] - _prev_median(out["volatility"], window)
    out["spread_surprise"] = out["spread"] - _prev_median(out["spread"], 252)
    # round 15: the library's spread estimate over a shorter trailing window (its own formula,
    # through ``prepare``), so fewer days share the same two-day estimates
    for window in (5, 10):
        short = prepare(market, volume_dropouts=volume_dropouts, spread_window=window).raw
        out[f"spread{window}"] = short["spread"].loc[out.index]
    out["impact_surprise"] = out["impact"] - _prev_median(out["impact"], 63)
    out["ret"] = r
    out["ret_lag"] = r.shift(1)
    out["vret_lag"] = (out["volume"] * r).shift(1)
    sd63 = _prev_sd(r, 63)
    out["reversal"] = (-(r * r.shift(1)) / sd63**2).clip(-20, 20)
    # the same at the weekly horizon (forced flow "is later partly undone" within days): this
    # week's return against last week's, and last week's weighted by its abnormal volume
    # (Campbell, Grossman & Wang: the high-volume moves are the ones that reverse)
    week = np.log(close / close.shift(5))
    out["reversal5"] = (-(week * week.shift(5)) / (5.0 * sd63**2)).clip(-20, 20)
    volume_week = out["volume"].rolling(5, min_periods=3).mean()
    out["vreversal5"] = (-(week * volume_week.shift(5) * week.shift(5))
                         / (5.0 * sd63**2)).clip(-20, 20)
    rng = np.log(high / low).where(high > low)
    out["whipsaw"] = (np.log(rng.clip(lower=1e-4)) - np.log(r.abs().clip(lower=1e-4))).clip(-3, 6)
    clv = ((2.0 * close - high - low) / (high - low)).where(high > low).clip(-1.0, 1.0)
    out["close_pressure"] = np.sign(r) * clv
    out["close_pressure5"] = out["close_pressure"].rolling(5, min_periods=3).mean()
    out["clv_abs5"] = clv.abs().rolling(5, min_periods=3).mean()
    speed = np.log(close / close.shift(5)).abs() / (np.sqrt(5.0) * sd63)
    out["speed5"] = speed.clip(upper=20.0)
    if macro:
        vix = _vix(out.index)
        out["vix_surprise"] = vix - _prev_median(vix, 252)
        rv21 = r.rolling(21, min_periods=15).std()
        out["vrp"] = vix - np.log(100.0 * np.sqrt(252.0) * rv21.where(rv21 > 0))
        for name in _MACRO:
            level = _macro(name, out.index)
            out[name] = level
            out[f"{name}_chg5"] = level - level.shift(5)
            out[f"{name}_abs5"] = out[f"{name}_chg5"].abs()
        dy = _treasury_change(out.index)
        prod = -(r / _prev_sd(r, 63)) * (dy / _prev_sd(dy, 63))
        out["stock_bond"] = prod.rolling(5, min_periods=3).mean()
        # the bond market's own turbulence against its trailing year: realised (10-year yield,
        # 1962-2018) and implied (MOVE, 2002-2018)
        out["bond_vol_surprise"] = bond_vol_surprise_observable(dy)  # the library's formula
        out["bond_vol21_surprise"] = _bond_surprise(dy, 21, 10)
        # round 15: the day's own yield change (no window), |dy| floored at one tick (1 bp)
        b1 = np.log(dy.abs().clip(lower=0.01))
        out["bond_vol1_surprise"] = b1 - _prev_median(b1, 252)
        out["bond2_vol_surprise"] = bond_vol_surprise_observable(
            _treasury_change(out.index, "dgs2"))
        out["move_surprise"] = out["move"] - _prev_median(out["move"], 252)
        gap = _etf_gap(close)
        out["etf_gap1"] = gap - _prev_median(gap, 252)
        gap5 = np.log(np.exp(gap).rolling(5, min_periods=3).mean())
        out["etf_gap5"] = gap5 - _prev_median(gap5, 252)
    return out


def _etf_gap(close: pd.Series) -> pd.Series:
    """``log(max(|td_t|, 1e-4))`` with ``td_t`` = the day's log return of the SPY ETF (dividend
    adjusted) minus the index's: how far the liquid wrapper's day departs from its basket's.
    Missing before SPY's first day (1993-01-29) and on days either series lacks."""
    frame = pd.read_csv(BUNDLED / "spy_etf_daily_1993_2018.csv", parse_dates=["date"])
    spy = pd.to_numeric(frame.set_index("date")["adj_close"], errors="coerce")
    spy = spy.where(spy > 0).reindex(close.index)
    td = np.log(spy).diff() - np.log(close).diff()
    return np.log(td.abs().clip(lower=1e-4))


def standardise(raw: pd.DataFrame, columns, start, end) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(raw[columns] - mean) / sd`` with mean and sd over ``start..end`` (missing skipped).

    Returns the standardised frame on ALL dates of ``raw`` and a frame of the ``center`` and
    ``scale`` per column. Raises ``ValueError`` naming a column with no variation or no data in
    the window.
    """
    cols = list(columns)
    window = raw.loc[pd.Timestamp(start) : pd.Timestamp(end), cols]
    center = window.mean()
    scale = window.std(ddof=0)
    bad = [c for c in cols if not (np.isfinite(scale[c]) and scale[c] > 0)]
    if bad:
        raise ValueError(f"observable(s) {bad} have no variation or no data in {start}..{end}")
    z = (raw[cols] - center) / scale
    return z, pd.DataFrame({"center": center, "scale": scale})
