r"""Transition covariates: named daily series for time-varying transition probabilities.

A model with time-varying transition probabilities uses :math:`P_t = P(z_{t-1})`: the
covariate vector of day :math:`t-1` drives the move into day :math:`t`. This module computes
the raw covariates :math:`z_t` on the *price calendar* (the dates of the validated price
frame); :func:`~stressflow.data.prepare` cuts them to the fit window and standardises them
with the stored :class:`~stressflow.data.FeatureTransform`.

Registered covariates (:data:`COVARIATES`; :func:`list_covariates` prints the table).
:math:`x_t` is the source series aligned to the price calendar (see below), :math:`c_t` the
VIX close.

===========  ================================================================================
name         formula (on trading row :math:`t` of the price calendar)
===========  ================================================================================
``ted``      :math:`x_t`, FRED TEDRATE (3-month LIBOR minus 3-month T-bill), %; bundled
             ``ted`` dataset, 1986-01-02 .. 2017-10-30, or column ``ted_spread_pct``.
``hy_oas``   :math:`x_t`, ICE BofA US High Yield OAS (FRED BAMLH0A0HYM2), %. **Not bundled**
             (ICE terms): pass a column ``hy_oas_pct`` in ``covariate_data`` or the prices.
``baa10y``   :math:`x_t`, FRED BAA10Y (Moody's Baa yield minus 10-year Treasury), %; bundled
             ``baa10y`` dataset, 1986-01-02 .. 2017-11-03, or column ``baa10y_pct``.
``vix``      :math:`\log c_t`, Cboe VIX close; bundled ``vix`` dataset, 1990-01-02 ..
             2018-12-31, or column ``vix_close``.
``d_<x>``    :math:`z_t - z_{t-5}` for ``x`` in ``ted, hy_oas, baa10y, vix``: the change over
             :data:`CHANGE_ROWS` = 5 trading rows of the aligned covariate ``x`` (for
             ``d_vix`` the change of log VIX).
``low_vol``  the leverage build-up proxy below, from the price tape alone.
===========  ================================================================================

References: FRED series TEDRATE, BAMLH0A0HYM2 and BAA10Y (Federal Reserve Bank of St. Louis;
provenance in ``datasets/SOURCES.md``); Cboe VIX White Paper (2003). Credit and funding
spreads as drivers of regime changes: Gilchrist, S. and Zakrajsek, E. (2012), Credit spreads
and business cycle fluctuations, *American Economic Review* 102(4), 1692-1720;
Brunnermeier, M. K. (2009), Deciphering the liquidity and credit crunch 2007-2008, *Journal
of Economic Perspectives* 23(1), 77-100 (the TED spread as a funding-stress gauge).

``low_vol`` (leverage build-up proxy). With :math:`v_t` the Parkinson log volatility of
:mod:`stressflow.data.observables` (``0.5 * log((log(h_t / l_t))^2 / (4 log 2))``, missing on
flat or inconsistent rows), computed on the trading rows (``volume != 0``),

.. math::
    \bar v_t = \operatorname{mean}\{v_{t-k} : 0 \le k < 1260\}, \qquad
    d_t = v_t - \bar v_t, \qquad
    \mathrm{low\_vol}_t = -\operatorname{mean}\{d_{t-k} : 0 \le k < 252\},

means over the available (non-missing) values, requiring at least 630 and 126 of them
(:data:`LOW_VOL_TREND_WINDOW`, :data:`LOW_VOL_MEAN_WINDOW`, half of each as minimum). Higher =
volatility has stayed further below its five-year level for the past year. It is a *proxy*
after Danielsson, J., Valenzuela, M. and Zer, I. (2018), Learning from history: volatility and
financial crises, *Review of Financial Studies* 31(7), 2774-2805: they find that volatility
persistently below its trend predicts banking crises through a build-up of credit (agents
take more risk when measured risk is low). Leverage itself is not observed here; the proxy
only measures the low-risk environment in which, by their evidence, leverage accumulates. It
is not their measure, which is built from annual data with a filtered trend and treats
deviations above and below the trend separately: here a trailing mean is the simplest causal
trend on daily data, and one signed mean keeps a single covariate.

Alignment and treatments (all causal: the value on row :math:`t` uses observations dated
:math:`\le t` only):

* **As-of join.** The value on row :math:`t` is the last observation dated on or before
  :math:`t`. A row without an observation of its own (a FRED holiday, a gap, an empty cell, a
  zero-volume row for ``low_vol``) thus carries the last value forward; such rows are counted
  per covariate (``DataReport.n_covariate_carried``) and announced with a
  :class:`~stressflow.data.DataWarning`. Observations dated on a day that is not a price row
  (e.g. the HY OAS month-end weekend values) only serve as such carried values; they are
  counted (``n_covariate_off_calendar``).
* **Staleness limit.** A value is carried over at most ``max_stale`` trading rows
  (:data:`~stressflow.data.transform.DEFAULT_COVARIATE_MAX_STALE` = 5; the longest gap inside
  the bundled series on the S&P 500 calendar is 2 rows). Rows further from the last
  observation have no value.
* **No value.** Before a series starts, during a warm-up (``d_*``: 5 rows; ``low_vol``: 756
  rows at least) or beyond the staleness limit (e.g. ``ted`` after 2017-10-30) a covariate has
  no value (NaN in :func:`~stressflow.data.compute_covariates`). :func:`~stressflow.data.prepare`
  raises
  :class:`~stressflow.data.DataError` if that happens inside the fit window, naming the
  covariate, the first uncovered date and the dates the series covers: a transition needs a
  value every day, and no value is invented.
* Non-numeric or infinite source values raise :class:`~stressflow.data.DataError` naming the
  column and date; so does a VIX close <= 0 (log undefined).

User covariates: any name that is not registered is a user column, looked up in
``covariate_data`` (a DataFrame with a ``date`` column or a DatetimeIndex) and in the price
frame, used as given (no log), aligned and treated as above. An observation's date must be
the date it became known (e.g. monthly margin debt is published weeks after the month end;
date it by publication, and raise ``max_stale`` to cover a month, e.g. 25 rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .observables import compute_observables

__all__ = [
    "CHANGE_ROWS",
    "COVARIATES",
    "LOW_VOL_MEAN_WINDOW",
    "LOW_VOL_TREND_WINDOW",
    "CovariateSpec",
    "history_rows",
    "list_covariates",
]

#: Trading rows over which the ``d_*`` covariates take their change.
CHANGE_ROWS = 5
#: ``low_vol``: trailing window (trading rows) of the long-run volatility level (5 years).
LOW_VOL_TREND_WINDOW = 1260
#: ``low_vol``: trailing window (trading rows) of the mean deviation (1 year).
LOW_VOL_MEAN_WINDOW = 252


@dataclass(frozen=True)
class CovariateSpec:
    """One registered transition covariate.

    Attributes
    ----------
    name : str
        The covariate's name (a column of ``PreparedData.covariates``).
    description : str
        What it is, with its unit.
    formula : str
        The exact formula on the price calendar.
    op : str
        ``"level"`` (the aligned source value), ``"log"`` (its log), ``"change"`` (change of
        the covariate ``base`` over :data:`CHANGE_ROWS` rows) or ``"low_vol"``.
    column : str or None
        Source column looked up in ``covariate_data`` and the price frame.
    dataset, dataset_column : str or None
        Bundled dataset and its column used when the user supplies no ``column``.
    base : str or None
        For ``op="change"``: the covariate whose change is taken.
    """

    name: str
    description: str
    formula: str
    op: str
    column: str | None = None
    dataset: str | None = None
    dataset_column: str | None = None
    base: str | None = None


def _registry() -> dict[str, CovariateSpec]:
    levels = [
        CovariateSpec("ted", "TED spread (FRED TEDRATE), %", "x_t", "level",
                      "ted_spread_pct", "ted", "ted_spread_pct"),
        CovariateSpec("hy_oas", "ICE BofA US High Yield OAS (FRED BAMLH0A0HYM2), %, not "
                      "bundled", "x_t", "level", "hy_oas_pct"),
        CovariateSpec("baa10y", "Baa corporate minus 10-year Treasury yield (FRED BAA10Y), %",
                      "x_t", "level", "baa10y_pct", "baa10y", "baa10y_pct"),
        CovariateSpec("vix", "log of the Cboe VIX close", "log(c_t)", "log", "vix_close",
                      "vix", "close"),
    ]  # fmt: skip
    out = {spec.name: spec for spec in levels}
    for spec in levels:
        name = f"d_{spec.name}"
        out[name] = CovariateSpec(
            name,
            f"{CHANGE_ROWS}-trading-day change of {spec.name}",
            f"{spec.name}_t - {spec.name}_(t-{CHANGE_ROWS})",
            "change",
            base=spec.name,
        )
    out["low_vol"] = CovariateSpec(
        "low_vol",
        "leverage build-up proxy: log Parkinson volatility below its 5-year mean, averaged "
        "over a year (after Danielsson, Valenzuela and Zer 2018)",
        f"-mean_{LOW_VOL_MEAN_WINDOW}(v_t - mean_{LOW_VOL_TREND_WINDOW}(v_t))",
        "low_vol",
    )
    return out


#: Registered covariates by name (formulas in the module docstring).
COVARIATES: dict[str, CovariateSpec] = _registry()


def history_rows(names) -> int:
    """Trailing trading rows that the covariates ``names`` need to take the value they have
    on the whole series: ``CHANGE_ROWS + 1`` for a change, the two low-volatility windows for
    ``low_vol``, 0 for levels and user columns."""
    need = 0
    for name in names:
        spec = COVARIATES.get(name)
        if spec is None:
            continue
        if spec.op == "change":
            need = max(need, CHANGE_ROWS + 1)
        elif spec.op == "low_vol":
            need = max(need, LOW_VOL_MEAN_WINDOW + LOW_VOL_TREND_WINDOW)
    return need


def list_covariates() -> pd.DataFrame:
    """The registered covariates as a table indexed by name.

    Returns
    -------
    pandas.DataFrame
        Columns ``description``, ``formula``, ``source_column`` (looked up in
        ``covariate_data`` and the price frame) and ``bundled`` (the bundled dataset used
        otherwise, empty if none).
    """
    return pd.DataFrame.from_records(
        [
            {
                "name": s.name,
                "description": s.description,
                "formula": s.formula,
                "source_column": s.column or "",
                "bundled": s.dataset or ("(price tape)" if s.op == "low_vol" else ""),
            }
            for s in COVARIATES.values()
        ],
        index="name",
    )


def low_vol_series(prices: pd.DataFrame) -> pd.Series:
    """``low_vol`` on the trading rows (``volume != 0``) of validated prices; NaN in warm-up."""
    obs = compute_observables(prices)
    traded = ~obs.zero_volume.to_numpy()
    v = obs.raw["volatility"][traded]
    trend = v.rolling(LOW_VOL_TREND_WINDOW, min_periods=LOW_VOL_TREND_WINDOW // 2).mean()
    mean_dev = (v - trend).rolling(LOW_VOL_MEAN_WINDOW, min_periods=LOW_VOL_MEAN_WINDOW // 2)
    return -mean_dev.mean()
