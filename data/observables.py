r"""The four built-in observables, computed causally from daily OHLC and volume.

All observables are on a log scale and are computed on the full validated series (so trailing
windows at the start of a requested window use history from before it). There is no
look-ahead: the value at date :math:`t` uses only rows dated :math:`\le t`. Trailing windows
count *trading rows*, not calendar days.

Non-trading rows: a row with ``volume == 0`` (e.g. the Xetra holiday rows in the bundled VW
data: flat O=H=L=C, volume 0) is not a trading day. It is removed before anything is computed
(so it enters no return, range, spread or rolling median) and all observables are missing on
that date; the date stays in the time axis.

Range-unusable rows: if high, low or close is empty, ``high == low`` (a flat, close-only row,
e.g. S&P 500 on 1983-06-30) or close lies outside ``[low, high]`` (inconsistent data, e.g. some
VW rows), the two range-based observables (spread and volatility) are missing that day and
that row's range enters no spread estimate.

Notation: :math:`h_t, l_t, c_t, v_t` are high, low, close and volume on trading row :math:`t`.

1. ``spread`` (log). With a user-supplied spread column :math:`S_t > 0` (a credit spread, a
   quoted bid-ask spread, ...) the observable is :math:`\log S_t`. Otherwise it is the
   Abdi & Ranaldo (2017) close-high-low estimator, made causal. With log prices
   :math:`\tilde c_t = \log c_t` and mid-range :math:`\eta_t = (\log h_t + \log l_t)/2`, the
   two-day estimate assigned to day :math:`t` (it uses days :math:`t-1` and :math:`t`) is

   .. math:: s^2_t = 4\,(\tilde c_{t-1} - \eta_{t-1})\,(\tilde c_{t-1} - \eta_t),

   the spread is :math:`\hat S_t = \sqrt{\overline{s^2_+}_t}` where
   :math:`\overline{s^2_+}_t` is the mean of :math:`\max(s^2, 0)` over the trailing
   ``spread_window`` trading rows ending at :math:`t`, and the observable is
   :math:`\log \hat S_t`.

   Negative two-day estimates are set to zero *before* averaging, the adjustment of
   Corwin & Schultz (2012, Section 3) for their two-day high-low estimator. The paper's
   variant (average first, set a negative monthly average to zero) is unusable on daily
   index and large-stock data: measured on the bundled S&P 500, SPY, VW and GME files the
   21-day average is <= 0 on 44-55% of days, because the estimator's day-to-day noise is of
   the order of the daily variance, far above a spread of a few basis points, so the model
   would see a spread missing half the time and not at random. With the per-day floor the
   estimate is an upward-biased but always-defined measure of the spread's *variation*,
   which is all a standardised observable needs. A window whose two-day estimates are all
   <= 0 still gives :math:`\hat S_t = 0`; such days are missing and counted
   (``n_zero_spread``).

   Corwin, S. A. and Schultz, P. (2012). A simple way to estimate bid-ask spreads from daily
   high and low prices. *Journal of Finance* 67(2), 719-760.

   Abdi, F. and Ranaldo, A. (2017). A simple estimation of bid-ask spreads from daily close,
   high, and low prices. *Review of Financial Studies* 30(12), 4437-4480.

2. ``volatility`` (log). The Parkinson (1980) range estimator of the daily variance,

   .. math:: \hat\sigma^2_t = \frac{(\log(h_t / l_t))^2}{4 \log 2},

   and the observable is :math:`\tfrac12 \log \hat\sigma^2_t` (log daily volatility).
   Garman-Klass is deliberately not used: it needs the open, which is unreliable in the
   bundled S&P 500 data (it often equals the previous close). Flat days
   (:math:`h_t = l_t`) would give :math:`-\infty` and are missing instead.

   Parkinson, M. (1980). The extreme value method for estimating the variance of the rate of
   return. *Journal of Business* 53(1), 61-65.

3. ``volume`` (log abnormal volume),

   .. math:: x_t = \log v_t - \operatorname{median}\{\log v_{t-k} : 1 \le k \le W_v\},

   the median over the previous ``volume_window`` (:math:`W_v`) trading rows, excluding
   :math:`t`, requiring at least :math:`W_v // 3` non-missing values.

4. ``impact`` (log abnormal Amihud illiquidity). With :math:`r_t = \log(c_t / c_{t-1})`,

   .. math:: \mathrm{ILLIQ}_t = \frac{\max(|r_t|, 10^{-4})}{c_t\, v_t}, \qquad
             x_t = \log \mathrm{ILLIQ}_t
                   - \operatorname{median}\{\log \mathrm{ILLIQ}_{t-k} : 1 \le k \le W_i\},

   the median over the previous ``impact_window`` (:math:`W_i`) trading rows, excluding
   :math:`t`, with at least :math:`W_i // 3` values. :math:`|r_t|` is floored at 1 basis point
   so that zero-return days give a finite value (counted as ``n_zero_return_floored``).
   :math:`c_t v_t` is the traded value (for an index, close times composite share volume,
   a proxy).

   Amihud, Y. (2002). Illiquidity and stock returns: cross-section and time-series effects.
   *Journal of Financial Markets* 5(1), 31-56.

Why *abnormal* volume and impact: the level of volume and of traded value trends over decades
(S&P 500 composite volume grows about 100-fold from 1983 to 2018, so Amihud's ratio falls by a
similar factor). A raw level would mostly encode the calendar year, not market stress. Dividing
by a trailing median (subtracting it on the log scale) measures volume and price impact
relative to recent normal conditions; a median rather than a mean keeps single extreme days
from distorting the baseline.

Warm-up: the first rows of the series do not have enough trailing history (``spread_window //
3`` two-day estimates, i.e. that many rows, for the spread; ``volume_window // 3`` prior rows
for volume; ``impact_window // 3`` prior returns, i.e. ``1 + impact_window // 3`` rows, for
impact); those observables are missing there and the rows are counted as ``n_warmup``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from stressflow.models.dims import FEATURES

__all__ = ["RETURN_FLOOR", "OPTIONAL_OBSERVABLES", "BOND_YIELD_COLUMN", "EXTERNAL_OBSERVABLES",
           "Observables", "bond_vol_surprise_observable", "compute_observables",
           "optional_history_rows", "reversal_observable", "vol_break_observable",
           "vol_surprise_observable"]

#: Floor on :math:`|r_t|` in the Amihud ratio (1 basis point).
RETURN_FLOOR: float = 1e-4
_LOG_4LN2 = float(np.log(4.0 * np.log(2.0)))
SPREAD, VOLATILITY, VOLUME, IMPACT = FEATURES
#: Observables computed from the tape beyond the four built-in ones, on request
#: (``prepare(observables=...)``); their names are reserved like the built-ins'.
OPTIONAL_OBSERVABLES: tuple[str, ...] = ("vol_surprise", "vol_surprise21", "reversal",
                                         "bond_vol_surprise")
#: Column (in ``covariate_data`` or the prices) of the 10-year government bond yield, in
#: percent, that ``bond_vol_surprise`` uses instead of the bundled US Treasury series.
BOND_YIELD_COLUMN = "bond_yield_10y_pct"
#: Optional observables computed from a series other than the market's own tape: where that
#: series has no value in a fit window at all, the observable is missing on every day (warned;
#: centre 0, scale 1) and the model takes nothing from it, instead of refusing the data.
EXTERNAL_OBSERVABLES: tuple[str, ...] = ("bond_vol_surprise",)
#: Trailing rows of the bond market's realised volatility in ``bond_vol_surprise``.
BOND_VOL_WINDOW = 5
#: Trailing trading rows of the volatility baseline in ``vol_surprise``.
VOL_SURPRISE_WINDOW = 252
#: Trailing trading rows of the volatility baseline in ``vol_surprise21`` (one month).
VOL_BREAK_WINDOW = 21
#: Trailing rows of the return scale in ``reversal`` and the clip of its value.
REVERSAL_WINDOW = 63
REVERSAL_CLIP = 20.0


@dataclass(frozen=True)
class Observables:
    """Raw (unstandardised, log-scale) observables on the full date index, with diagnostics.

    Every attribute is indexed like the validated price frame (all dates, including
    non-trading rows). Boolean masks mark the treatment applied on each date.
    """

    raw: pd.DataFrame
    zero_volume: pd.Series
    flat_range: pd.Series
    range_inconsistent: pd.Series
    return_floored: pd.Series
    zero_spread: pd.Series
    warmup: pd.Series


def _rolling_previous_median(x: pd.Series, window: int) -> pd.Series:
    """Median of the previous ``window`` values (excluding the current one)."""
    return x.shift(1).rolling(window, min_periods=max(1, window // 3)).median()


def _log_positive(x: pd.Series) -> pd.Series:
    """Natural log where ``x > 0``, NaN elsewhere (without RuntimeWarnings)."""
    values = x.to_numpy(dtype="float64")
    out = np.full(values.shape, np.nan)
    positive = values > 0
    out[positive] = np.log(values[positive])
    return pd.Series(out, index=x.index)


def vol_surprise_observable(volatility: pd.Series) -> pd.Series:
    r"""Volatility against its own trailing year: a break, not a level (trading rows only).

    .. math:: \mathrm{vol\_surprise}_t = x_t - \operatorname{median}\{x_{t-k} :
       1 \le k \le 252\},

    with :math:`x` the ``volatility`` observable (log Parkinson volatility), the median over
    the previous ``VOL_SURPRISE_WINDOW`` (252) trading rows excluding t, with at least 84
    non-missing values. A sudden break (forced selling into thin liquidity) is far above its
    trailing year; a persistent high-volatility repricing soon raises its own baseline, so its
    surprise fades while its level stays high. It is the default model's compulsion feature
    (forced flow is the stage with the highest mean of it, :class:`stressflow.models.spec
    .ModelSpec`). Causal: the value at t uses rows up to t.
    """
    return volatility - _rolling_previous_median(volatility, VOL_SURPRISE_WINDOW)


def vol_break_observable(volatility: pd.Series) -> pd.Series:
    r"""Volatility against its own trailing month (``vol_surprise21``; trading rows only).

    .. math:: \mathrm{vol\_surprise21}_t = x_t - \operatorname{median}\{x_{t-k} :
       1 \le k \le 21\},

    with :math:`x` the ``volatility`` observable, the median over the previous
    ``VOL_BREAK_WINDOW`` (21) trading rows excluding t, with at least 7 non-missing values.
    The short-baseline form of :func:`vol_surprise_observable`: forced flow is a late and short
    stage, so a turbulent stretch that lasts longer than a month becomes its own baseline and
    no longer reads as a break (a months-long repricing has a low ``vol_surprise21`` after its
    first weeks, whatever the calm year before it). Causal: the value at t uses rows up to t.
    """
    return volatility - _rolling_previous_median(volatility, VOL_BREAK_WINDOW)


def reversal_observable(log_close: pd.Series) -> pd.Series:
    r"""The volume-return reversal signature as an observable (trading rows only).

    .. math:: \mathrm{reversal}_t = \operatorname{clip}\left(-\frac{r_t\, r_{t-1}}
       {s_t^2}, -20, 20\right),

    with :math:`r_t = \log c_t - \log c_{t-1}` and :math:`s_t` the standard deviation of
    :math:`r` over the previous ``REVERSAL_WINDOW`` (63) trading rows (excluding t; at least 21).
    It is large and positive when today's move undoes yesterday's relative to the recent scale of
    moves: the signature of liquidity-driven, price-insensitive trading that is later partly
    undone (Campbell, Grossman & Wang 1993, QJE 108(4); Llorente, Michaely, Saar & Wang 2002,
    RFS 15(4): returns that come with liquidity-driven trading reverse, informed ones continue).
    Causal: the value at t uses closes up to t.
    """
    r = log_close - log_close.shift(1)
    scale = r.shift(1).rolling(REVERSAL_WINDOW, min_periods=REVERSAL_WINDOW // 3).std()
    return (-(r * r.shift(1)) / scale**2).clip(-REVERSAL_CLIP, REVERSAL_CLIP)


def optional_history_rows(names) -> int:
    """Trailing trading rows (the day itself included) that the optional observables ``names``
    need to take the value they have on the whole series: ``vol_surprise`` 253,
    ``vol_surprise21`` 22, ``reversal`` 65, ``bond_vol_surprise`` 257 (0 for other names)."""
    need = {"vol_surprise": VOL_SURPRISE_WINDOW + 1, "vol_surprise21": VOL_BREAK_WINDOW + 1,
            "reversal": REVERSAL_WINDOW + 2,
            "bond_vol_surprise": VOL_SURPRISE_WINDOW + BOND_VOL_WINDOW}
    return max((need.get(str(name), 0) for name in names), default=0)


def bond_vol_surprise_observable(yield_change: pd.Series) -> pd.Series:
    r"""The bond market's turbulence against its own trailing year (trading rows only).

    .. math:: b_t = \tfrac12 \log \operatorname{mean}\{\Delta y_{t-k}^2 : 0 \le k < 5\},
       \qquad \mathrm{bond\_vol\_surprise}_t = b_t - \operatorname{median}\{b_{t-k} :
       1 \le k \le 252\},

    with :math:`\Delta y_t` the day's change of the 10-year government bond yield (percentage
    points; on the bond market's own days, taken on the market's dates, missing where the
    bond market had no value), the mean over the last ``BOND_VOL_WINDOW`` (5) rows with at
    least 3 values (floored at 1e-8), the median over the previous 252 rows with at least 84.
    Stress migrates across a portfolio: holders sell what is liquid or what is collateral,
    and the 10-year Treasury is both, so a forced deleveraging moves the bond market with the
    stock market (1987, 1998, 2008) where a discretionary equity repricing need not (the 2016
    scare, Q4 2018; ``bench/compulsion/README.md`` round 6). Causal.
    """
    b = 0.5 * np.log((yield_change**2).rolling(BOND_VOL_WINDOW, min_periods=3).mean()
                     .clip(lower=1e-8))
    return b - _rolling_previous_median(b, VOL_SURPRISE_WINDOW)


def compute_observables(
    prices: pd.DataFrame,
    *,
    spread_column: str | None = None,
    spread_window: int = 21,
    volume_window: int = 63,
    impact_window: int = 252,
    optional: tuple[str, ...] = (),
    bond_yield: pd.Series | None = None,
) -> Observables:
    """Compute the raw spread, volatility, volume and impact observables.

    Parameters
    ----------
    prices : pandas.DataFrame
        Validated prices (see :func:`~stressflow.data.read_prices`) with ``high, low,
        close, volume`` as floats and, if given, the ``spread_column`` (floats, > 0 or NaN).
    spread_column : str, optional
        Use :math:`\\log` of this column as the spread observable instead of the
        Abdi-Ranaldo estimate.
    spread_window, volume_window, impact_window : int
        Trailing windows in trading rows (see the module docstring for the formulas).
    optional : tuple of str
        Names from :data:`OPTIONAL_OBSERVABLES` to compute as well (``"vol_surprise"``,
        :func:`vol_surprise_observable`; ``"vol_surprise21"``, :func:`vol_break_observable`;
        ``"reversal"``, :func:`reversal_observable`; ``"bond_vol_surprise"``,
        :func:`bond_vol_surprise_observable`, which needs ``bond_yield``).
    bond_yield : pandas.Series, optional
        The 10-year bond yield (%) on its own dates (no empty values), for
        ``"bond_vol_surprise"``.

    Returns
    -------
    Observables
        ``raw`` has columns :data:`~stressflow.models.dims.FEATURES` followed by ``optional``;
        NaN marks a missing observation. The masks give the treatment applied on each date.
    """
    unknown = [name for name in optional if name not in OPTIONAL_OBSERVABLES]
    if unknown:
        raise ValueError(f"unknown observables {unknown}; optional ones: "
                         f"{list(OPTIONAL_OBSERVABLES)}")
    index = prices.index
    zero_volume = (prices["volume"] == 0).to_numpy()
    traded = prices.loc[~zero_volume]

    high = traded["high"]
    low = traded["low"]
    close = traded["close"]
    log_high = _log_positive(high)
    log_low = _log_positive(low)
    log_close = _log_positive(close)
    log_volume = _log_positive(traded["volume"])

    complete = (high.notna() & low.notna() & close.notna()).to_numpy()
    inconsistent = complete & ((close < low) | (close > high)).to_numpy()
    flat = complete & ~inconsistent & (high == low).to_numpy()
    range_ok = complete & ~inconsistent & ~flat

    # Volatility: Parkinson (1980), 0.5 * log(sigma^2) = log(log(h/l)) - 0.5 * log(4 ln 2).
    log_range = (log_high - log_low).where(range_ok)
    volatility = _log_positive(log_range) - 0.5 * _LOG_4LN2

    # Spread.
    n = len(traded)
    zero_spread = np.zeros(n, dtype=bool)
    if spread_column is not None:
        spread = _log_positive(traded[spread_column])
    else:
        eta = ((log_high + log_low) / 2.0).where(range_ok)
        c = log_close.where(range_ok)
        s2 = (4.0 * (c.shift(1) - eta.shift(1)) * (c.shift(1) - eta)).clip(lower=0.0)
        mean_s2 = s2.rolling(spread_window, min_periods=max(1, spread_window // 3)).mean()
        mean_s2 = mean_s2.where(range_ok)
        zero_spread = (mean_s2 <= 0).to_numpy()
        spread = 0.5 * _log_positive(mean_s2)

    # Volume: log abnormal volume.
    volume = log_volume - _rolling_previous_median(log_volume, volume_window)

    # Impact: log abnormal Amihud illiquidity, |r| floored at RETURN_FLOOR.
    abs_return = (log_close - log_close.shift(1)).abs()
    floored = (abs_return < RETURN_FLOOR).to_numpy()
    log_illiq = np.log(abs_return.clip(lower=RETURN_FLOOR)) - log_close - log_volume
    impact = log_illiq - _rolling_previous_median(log_illiq, impact_window)

    position = np.arange(n)
    warmup_rows = (
        (position < max(1, volume_window // 3))
        | (position < 1 + max(1, impact_window // 3))
        | ((position < max(1, spread_window // 3)) if spread_column is None else False)
    )

    columns = {SPREAD: spread, VOLATILITY: volatility, VOLUME: volume, IMPACT: impact}
    if "vol_surprise" in optional:
        columns["vol_surprise"] = vol_surprise_observable(volatility)
    if "vol_surprise21" in optional:
        columns["vol_surprise21"] = vol_break_observable(volatility)
    if "reversal" in optional:
        columns["reversal"] = reversal_observable(log_close)
    if "bond_vol_surprise" in optional:
        if bond_yield is None:
            raise ValueError("bond_vol_surprise needs the bond_yield series")
        change = bond_yield.sort_index().diff().reindex(traded.index)
        columns["bond_vol_surprise"] = bond_vol_surprise_observable(change)
    raw = pd.DataFrame(columns, index=traded.index)[[*FEATURES, *optional]]
    raw = raw.reindex(index)

    def expand(mask: np.ndarray) -> pd.Series:
        out = pd.Series(False, index=index)
        out.loc[traded.index] = np.asarray(mask, dtype=bool)
        return out

    return Observables(
        raw=raw,
        zero_volume=pd.Series(zero_volume, index=index),
        flat_range=expand(flat),
        range_inconsistent=expand(inconsistent),
        return_floored=expand(floored),
        zero_spread=expand(zero_spread),
        warmup=expand(warmup_rows),
    )
