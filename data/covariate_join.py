"""Joining transition covariates to the price calendar and cutting them to a fit window.

The formulas and the treatments (as-of join, staleness limit, no value = error inside the
window) are documented in :mod:`stressflow.data.covariates`; this module implements them for
:func:`~stressflow.data.covariates.compute_covariates` and :func:`~stressflow.data.prepare`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from stressflow.models.dims import TIME
from stressflow.models.messages import require_int

from .bundled import load_dataset
from .covariates import CHANGE_ROWS, COVARIATES, CovariateSpec, low_vol_series
from .dates import _check_dates
from .errors import DataError, DataWarning
from .observables import BOND_YIELD_COLUMN
from .prices import Source, _set_date_index, read_prices, to_numeric_column
from .transform import COVARIATE, DEFAULT_COVARIATE_MAX_STALE, FeatureTransform


@dataclass(frozen=True)
class CovariateTable:
    """Raw covariates on the full price calendar, with what was done to them.

    ``values`` (float, NaN = no value), ``stale`` (int: trading rows since the row of the last
    observation, 0 = observed that day) share the price index; ``sources`` describes where
    each came from; ``observed`` gives the first and last observation date of its source;
    ``off_calendar`` the source dates that are not price rows.
    """

    values: pd.DataFrame
    stale: pd.DataFrame
    sources: dict[str, str]
    observed: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    off_calendar: dict[str, pd.DatetimeIndex]
    max_stale: int


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    names = (names,) if isinstance(names, str) else tuple(names)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"covariate names must be non-empty strings, got {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"covariate names must be distinct, got {list(names)}")
    return names


def check_max_stale(value: object) -> int:
    """``value`` as an int >= 0; ValueError naming ``covariate_max_stale`` otherwise."""
    return require_int("covariate_max_stale", value, 0)


#: FRED's download layout (fred.stlouisfed.org, "Download" -> CSV): the date column's name
#: (``observation_date`` today, ``DATE`` in older files) and the 10-year Treasury's series id.
FRED_DATE_COLUMNS = ("observation_date", "DATE")
FRED_BOND_YIELD_COLUMN = "DGS10"


def _fred_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """A FRED download of DGS10 read as is: its date column is the ``date`` column, and its
    ``DGS10`` column also supplies :data:`~stressflow.data.observables.BOND_YIELD_COLUMN`
    (unless that column is there), with FRED's ``"."`` (no value, e.g. a bond-market holiday)
    as missing. Other columns are left alone; ``frame`` is a copy the caller owns."""
    if "date" not in frame.columns and not isinstance(frame.index, pd.DatetimeIndex):
        found = [c for c in FRED_DATE_COLUMNS if c in frame.columns]
        if len(found) == 1:
            frame = frame.rename(columns={found[0]: "date"})
    if FRED_BOND_YIELD_COLUMN in frame.columns and BOND_YIELD_COLUMN not in frame.columns:
        column = frame[FRED_BOND_YIELD_COLUMN]
        if not pd.api.types.is_numeric_dtype(column):
            column = column.astype(object).where(column.astype(str).str.strip() != ".", np.nan)
        frame[BOND_YIELD_COLUMN] = column
    return frame


def read_covariate_data(covariate_data: pd.DataFrame | pd.Series | None) -> pd.DataFrame | None:
    """A validated copy of ``covariate_data`` indexed by sorted unique dates (or None).

    A FRED download of DGS10 (columns ``observation_date`` or ``DATE`` and ``DGS10``, ``"."``
    for no value) is accepted as is: it supplies the bond yield of ``bond_vol_surprise``."""
    if covariate_data is None:
        return None
    if isinstance(covariate_data, pd.Series):
        if covariate_data.name is None:
            raise DataError("a covariate_data Series needs a name (the column it supplies)")
        covariate_data = covariate_data.to_frame()
    if not isinstance(covariate_data, pd.DataFrame):
        raise TypeError(
            "covariate_data must be a pandas DataFrame (date column 'date' or a "
            f"DatetimeIndex), not {type(covariate_data).__name__}"
        )
    try:
        frame = _set_date_index(_fred_layout(covariate_data.copy(deep=True)), "date")
        _check_dates(frame.index)
    except DataError as exc:
        raise DataError(f"covariate_data: {exc}") from None
    return frame


def _source(spec_column: str, name: str, prices: pd.DataFrame, data: pd.DataFrame | None,
            spec: CovariateSpec | None) -> tuple[pd.Series, str]:  # fmt: skip
    """The source column as a float series without empty cells, and where it came from."""
    in_data = data is not None and spec_column in data.columns
    in_prices = spec_column in prices.columns
    if in_data and in_prices:
        raise DataError(
            f"column {spec_column!r} (covariate {name!r}) is both in covariate_data and in the "
            "price frame; drop one of them"
        )
    if in_data or in_prices:
        frame, where = (data, "covariate_data") if in_data else (prices, "the price frame")
        series = to_numeric_column(frame, spec_column)
        label = f"column {spec_column!r} of {where}"
    elif spec is not None and spec.dataset is not None:
        series = load_dataset(spec.dataset)[spec.dataset_column].rename(spec_column)
        label = f"bundled dataset {spec.dataset!r}"
    elif spec is not None:
        raise DataError(
            f"covariate {name!r} ({spec.description}) needs a column {spec_column!r} in "
            "covariate_data or the price frame: the series is not bundled (e.g. read the "
            "FRED/ICE file with pd.read_csv(path, index_col='date', parse_dates=True) and "
            "pass it as covariate_data)"
        )
    else:
        available = sorted({*prices.columns, *(data.columns if data is not None else ())})
        raise DataError(
            f"transition covariate {name!r} is neither registered ({', '.join(COVARIATES)}) "
            f"nor a column of covariate_data or the price frame (columns: {available})"
        )
    series = series.dropna()
    if series.empty:
        raise DataError(f"covariate {name!r}: {label} has no values")
    return series, label


def bond_yield_source(prices: pd.DataFrame, covariate_data, observables,
                      expected: str | None = None) -> tuple[pd.Series | None, str | None]:
    """The 10-year bond yield (%) for the ``bond_vol_surprise`` observable, on its own dates,
    and where it came from: ``(series, "covariate_data")`` for a column
    :data:`~stressflow.data.observables.BOND_YIELD_COLUMN` of ``covariate_data`` (e.g. a Bund
    yield for a German stock, or the Treasury after 2018), else ``(series, "bundled")`` for the
    bundled US Treasury ``dgs10`` (FRED/H.15, 1962-2018: the observable is missing after it
    ends); ``(None, None)`` when ``observables`` does not include it.

    Raises :class:`DataError` as for a covariate source (non-numeric or infinite values name
    the column and date; no values), for the column in the price frame (pass it as
    ``covariate_data``, which also covers the history an update needs), and when the source
    differs from ``expected`` (the one a fitted transform recorded).
    """
    if "bond_vol_surprise" not in observables:
        return None, None
    if BOND_YIELD_COLUMN in prices.columns:
        raise DataError(
            f"column {BOND_YIELD_COLUMN!r} is in the price frame; pass the bond yield as "
            "covariate_data (a date-indexed series or frame), which also covers the history an "
            "update needs"
        )
    data = read_covariate_data(covariate_data)
    source = ("covariate_data" if data is not None and BOND_YIELD_COLUMN in data.columns
              else "bundled")
    if expected is not None and source != expected:
        raise DataError(
            f"the fit took the bond yield of bond_vol_surprise from {expected} "
            f"({'the bundled US Treasury dgs10' if expected == 'bundled' else 'covariate_data'}"
            f"), these rows from {source}: "
            + (f"pass the same series as column {BOND_YIELD_COLUMN!r} of covariate_data"
               if expected == "covariate_data"
               else f"drop column {BOND_YIELD_COLUMN!r} from covariate_data")
        )
    spec = CovariateSpec("bond_vol_surprise", "10-year bond yield, %", "x_t", "level",
                         BOND_YIELD_COLUMN, "treasury", "dgs10")
    series, _ = _source(BOND_YIELD_COLUMN, "bond_vol_surprise", prices, data, spec)
    return series, source


def warn_bond_coverage(raw: pd.DataFrame, source: pd.Series | None) -> None:
    """Warn (:class:`DataWarning`) when ``bond_vol_surprise`` (column of ``raw``, the fit
    window) is missing on rows outside the dates its yield ``source`` covers; the count is also
    in ``DataReport.n_missing``. Nothing to do when ``source`` is None."""
    if source is None:
        return
    values = raw["bond_vol_surprise"]
    outside = values.isna() & ((values.index < source.index[0]) | (values.index > source.index[-1]))
    if outside.any():
        warnings.warn(
            f"bond_vol_surprise is missing on {int(outside.sum())} row(s) of the window "
            f"outside the bond yield's dates {source.index[0]:%Y-%m-%d} .. "
            f"{source.index[-1]:%Y-%m-%d} (first: {values.index[outside][0]:%Y-%m-%d})"
            + ("; that is every row, so the model takes nothing from it" if outside.all()
               else "") + f"; pass a longer series as column {BOND_YIELD_COLUMN!r} of "
            "covariate_data (--covariate-file on the CLI; a FRED DGS10 download is read as "
            "is)",
            DataWarning, stacklevel=3)


def _align(series: pd.Series, calendar: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """As-of values on ``calendar`` and rows since the row of the last observation (-1: none)."""
    obs = series.index.values.astype("datetime64[ns]")
    cal = calendar.values.astype("datetime64[ns]")
    pos = np.searchsorted(obs, cal, side="right") - 1
    has = pos >= 0
    last = obs[np.clip(pos, 0, None)]
    row_of_last = np.searchsorted(cal, last, side="right") - 1
    stale = np.where(has, np.arange(len(cal)) - row_of_last, -1)
    values = np.where(has, series.to_numpy(dtype="float64")[np.clip(pos, 0, None)], np.nan)
    return values, stale


def covariate_table(
    names: tuple[str, ...],
    prices: pd.DataFrame,
    data: pd.DataFrame | None,
    max_stale: int,
) -> CovariateTable:
    """Compute raw covariates on the calendar of validated ``prices`` (see module docstring)."""
    calendar = prices.index
    values, stale, sources, observed, off = {}, {}, {}, {}, {}

    def level(name: str) -> None:
        if name in values:
            return
        spec = COVARIATES.get(name)
        for frame, where in ((data, "covariate_data"), (prices, "the price frame")):
            if spec is not None and frame is not None and name in frame.columns:
                raise DataError(
                    f"column {name!r} in {where} has the name of the registered covariate "
                    f"{name!r} ({spec.description}); rename it (to {spec.column!r} to supply "
                    "the source series, or to another name to use it as a user covariate)"
                )
        if spec is not None and spec.op == "change":
            level(spec.base)
            base = pd.Series(values[spec.base], index=calendar)
            values[name] = (base - base.shift(CHANGE_ROWS)).to_numpy()
            stale[name] = stale[spec.base]
            for store in (sources, observed, off):
                store[name] = store[spec.base]
            return
        if spec is not None and spec.op == "low_vol":
            series, label = low_vol_series(prices).dropna(), "the price tape (Parkinson volatility)"
        else:
            series, label = _source(spec.column if spec else name, name, prices, data, spec)
        if spec is not None and spec.op == "log":
            bad = (series <= 0).to_numpy()
            if bad.any():
                raise DataError(
                    f"covariate {name!r}: {label} is {float(series[bad].iloc[0])!r} (<= 0, log "
                    f"undefined) on {series.index[bad][0]:%Y-%m-%d}"
                )
            series = np.log(series)
        aligned, rows = _align(series, calendar)
        covered = (rows >= 0) & (rows <= max_stale)
        values[name] = np.where(covered, aligned, np.nan)
        stale[name] = np.where(covered, rows, -1)
        sources[name] = label
        observed[name] = (series.index[0], series.index[-1])
        off[name] = series.index[~series.index.isin(calendar)]

    for name in names:
        level(name)
    columns = pd.Index(list(names), name=COVARIATE, dtype=object)
    return CovariateTable(
        values=pd.DataFrame({n: values[n] for n in names}, index=calendar, columns=columns),
        stale=pd.DataFrame({n: stale[n] for n in names}, index=calendar, columns=columns),
        sources={n: sources[n] for n in names},
        observed={n: observed[n] for n in names},
        off_calendar={n: off[n] for n in names},
        max_stale=max_stale,
    )


@dataclass(frozen=True)
class WindowCovariates:
    """Covariates of one fit window: raw and standardised frames, transform, report fields."""

    raw: pd.DataFrame
    standardised: pd.DataFrame
    transform: FeatureTransform
    report: dict[str, Any]


def _uncovered_error(table: CovariateTable, name: str, window: np.ndarray) -> DataError:
    values = table.values[name]
    bad = values.isna().to_numpy() & window
    dates = values.index
    valid = dates[values.notna().to_numpy()]
    first_obs, last_obs = table.observed[name]
    span = f"{dates[window][0]:%Y-%m-%d} .. {dates[window][-1]:%Y-%m-%d}"
    covered = (
        f"it has values on the price rows {valid[0]:%Y-%m-%d} .. {valid[-1]:%Y-%m-%d}"
        if len(valid)
        else "it has no value on any price row"
    )
    return DataError(
        f"transition covariate {name!r} has no value on {dates[bad][0]:%Y-%m-%d}, the first "
        f"of {int(bad.sum())} uncovered day(s) in the window {span}: its source "
        f"({table.sources[name]}) covers {first_obs:%Y-%m-%d} .. {last_obs:%Y-%m-%d} and {covered} "
        f"(values are carried forward at most covariate_max_stale={table.max_stale} trading "
        "rows; changes and low_vol need trailing history). A transition needs a value every "
        "day: choose a window inside the covered dates or supply a longer series"
    )


def window_covariates(
    names: tuple[str, ...],
    prices: pd.DataFrame,
    covariate_data: pd.DataFrame | pd.Series | None,
    window: np.ndarray,
    transform: FeatureTransform,
    fit: bool,
    max_stale: int,
) -> WindowCovariates:
    """Covariates on the rows ``window`` of validated ``prices``, standardised.

    If ``fit``, covariate centres and scales are fitted on the window and added to
    ``transform``; otherwise ``transform``'s are applied. Raises DataError if a covariate has
    no value on a window row (see :mod:`stressflow.data.covariates`).
    """
    table = covariate_table(names, prices, read_covariate_data(covariate_data), max_stale)
    for name in names:
        if (table.values[name].isna().to_numpy() & window).any():
            raise _uncovered_error(table, name, window)
    raw = table.values.loc[window].copy()
    raw.index = raw.index.rename(TIME)
    if fit and names:
        transform = transform.with_covariates(raw, max_stale=max_stale)
    elif fit:
        transform = replace(transform, covariate_max_stale=max_stale)
    standardised = transform.apply_covariates(raw)
    stale = table.stale.loc[window]
    start, end = raw.index[0], raw.index[-1]
    carried = {n: stale.index[(stale[n] > 0).to_numpy()] for n in names}
    off = {n: table.off_calendar[n] for n in names}
    report = {
        "covariates": names,
        "covariate_sources": dict(table.sources),
        "n_covariate_carried": {n: len(carried[n]) for n in names},
        "covariate_carried_dates": {n: tuple(carried[n]) for n in names},
        "covariate_max_carried": {n: int(stale[n].max()) if len(stale) else 0 for n in names},
        "n_covariate_off_calendar": {
            n: int(((off[n] >= start) & (off[n] <= end)).sum()) for n in names
        },
    }
    return WindowCovariates(raw=raw, standardised=standardised, transform=transform, report=report)


def compute_covariates(
    names: Iterable[str],
    prices: Source,
    *,
    covariate_data: pd.DataFrame | pd.Series | None = None,
    max_stale: int = DEFAULT_COVARIATE_MAX_STALE,
) -> pd.DataFrame:
    """Raw transition covariates on the price calendar.

    Parameters
    ----------
    names : iterable of str
        Registered covariate names (:data:`COVARIATES`) and/or user column names.
    prices : str, path-like or pandas.DataFrame
        Daily prices as accepted by :func:`~stressflow.data.read_prices` (never modified);
        their dates are the calendar, and user columns may be among their columns.
    covariate_data : pandas.DataFrame or named Series, optional
        Date-indexed (or with a ``date`` column) source columns: user covariates and/or the
        source columns of registered ones (e.g. ``hy_oas_pct``). Never modified.
    max_stale : int, default 5
        Most trading rows a value is carried forward past its observation.

    Returns
    -------
    pandas.DataFrame
        Index = the price dates (``"date"``), columns = ``names`` (axis named
        ``"covariate"``), raw values (formulas in the module docstring); NaN where a
        covariate has no value (before its series starts, warm-up, past ``max_stale``).

    Raises
    ------
    DataError
        Unknown name; a source column missing, ambiguous (in both frames), non-numeric or
        infinite (the message names column and date); VIX <= 0; bad ``covariate_data`` dates.
    """
    table = covariate_table(
        check_names(names),
        read_prices(prices),
        read_covariate_data(covariate_data),
        check_max_stale(max_stale),
    )
    return table.values.copy()
