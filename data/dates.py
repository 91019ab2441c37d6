"""The dates of a price file: parsed, checked and keyed as trading days.

Used by :func:`~stressflow.data.read_prices` (and the covariate reader): dates may be text,
datetimes, ``YYYYMMDD`` integers or nanoseconds since 1970; a time zone is dropped (the local
date as written), and so is a time of day (counted in a :class:`~stressflow.data.DataWarning`);
duplicate, unsorted, unparseable and non-daily dates are a :class:`~stressflow.data.DataError`
naming the first offending row or date.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from stressflow.models.messages import shown

from .errors import DataError, iso_date, warn_data


def _parse_dates(values: pd.Series | pd.Index, label: str) -> pd.DatetimeIndex:
    """Parse dates; raise DataError naming the first unparseable entry."""
    if isinstance(values, pd.PeriodIndex):
        values = values.to_timestamp()
    if isinstance(values, pd.DatetimeIndex) or pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.DatetimeIndex(values)
        raw = pd.Series(np.asarray(values, dtype=object))
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        parsed, raw = _numeric_dates(values, label), pd.Series(np.asarray(values, dtype=object))
    else:
        raw = pd.Series(np.asarray(values, dtype=object))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                parsed = pd.DatetimeIndex(pd.to_datetime(raw, errors="coerce"))
            except (TypeError, ValueError, OverflowError):  # e.g. UTC offsets that change with DST
                parsed = pd.DatetimeIndex(
                    [_wall_clock(pd.to_datetime(v, errors="coerce")) for v in raw.tolist()]
                )
    bad = np.flatnonzero(parsed.isna())
    if bad.size:
        i = int(bad[0])
        value = raw.iloc[i]
        what = "an empty date" if pd.isna(value) else f"an unparseable date {value!r}"
        raise DataError(
            f"{label} has {what} in row {i} ({bad.size} bad row(s)); dates must be "
            "parseable, e.g. ISO 'YYYY-MM-DD'"
        )
    if parsed.tz is not None:
        parsed = parsed.tz_localize(None)
    return parsed


def _numeric_dates(values: pd.Series | pd.Index, label: str) -> pd.DatetimeIndex:
    """Dates written as numbers: ``YYYYMMDD`` integers (``20030102``) and nanoseconds since
    1970 (integers of 1e17 or more: a DatetimeIndex's int64 values) are read as such; any other
    number is refused (pandas would read it as nanoseconds after 1970)."""
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.integer) and array.size and (array >= 10**17).all():
        return pd.DatetimeIndex(pd.to_datetime(array.astype(np.int64), unit="ns"))
    numbers = pd.Series(np.asarray(values, dtype="float64"))
    whole = numbers.dropna()
    if len(whole) and (whole == whole.round()).all() and whole.between(1e7, 1e8 - 1).all():
        text = numbers.map(lambda v: "" if np.isnan(v) else f"{int(v)}")
        return pd.DatetimeIndex(pd.to_datetime(text, format="%Y%m%d", errors="coerce"))
    first = whole.iloc[0] if len(whole) else float("nan")
    first = int(first) if first == first and first == round(first) else first
    raise DataError(
        f"{label} holds numbers ({shown(first)} in the first row), not dates; give dates as "
        "text such as '2003-01-02', as YYYYMMDD integers, or convert them first: "
        "pandas.to_datetime(x, unit='s') for seconds since 1970, pandas.to_datetime(x, "
        "unit='D', origin='1899-12-30') for spreadsheet serial days"
    )


def _wall_clock(value):
    """A parsed timestamp without its time zone: the local date and time as written."""
    if isinstance(value, pd.Timestamp) and value.tzinfo is not None:
        return value.tz_localize(None)
    return value


def _drop_time_of_day(index: pd.DatetimeIndex, label: str) -> pd.DatetimeIndex:
    """Dates with a time of day (``2003-01-02 16:00``) as their date, with a DataWarning that
    counts them; DataError if two rows then share a date (intraday rows)."""
    dates = index.normalize()
    timed = np.flatnonzero(index != dates)
    if not timed.size:
        return index
    shared = dates.duplicated() & ~index.duplicated()
    if shared.any():
        first = dates[np.flatnonzero(shared)[0]]
        raise DataError(
            f"{label} has several rows on {iso_date(first)} at different times of day "
            f"({int(shared.sum())} such row(s)); stressflow takes one row per trading day, so "
            "resample intraday data to daily bars first"
        )
    warn_data(
        f"{timed.size} date(s) in {label} carry a time of day (first: {index[timed[0]]}); "
        "each row is a trading day keyed by its date, so the time was dropped"
    )
    return dates


#: Rows needed before the spacing of the dates is judged (an update may add a few rows).
DAILY_CHECK_ROWS = 20
#: Median business days between consecutive rows from which the rows are not daily bars
#: (daily: 1; weekly: 5; a daily series with many missing days stays below it).
NOT_DAILY_SPACING = 4


def business_days_between(index: pd.DatetimeIndex) -> np.ndarray:
    """Business days (``numpy.busday_count``) from each row's date to the next row's, shape
    (len(index) - 1,): 1 between consecutive weekdays, 1 from a Friday to a Monday."""
    days = index.values.astype("datetime64[D]")
    return np.busday_count(days[:-1], days[1:])


def _check_daily(index: pd.DatetimeIndex) -> None:
    """DataError if the rows are weekly or monthly bars: every window of the observables and
    every duration of the model counts trading days, so such rows would be read as days."""
    if len(index) < DAILY_CHECK_ROWS:
        return
    spacing = float(np.median(business_days_between(index)))
    if spacing >= NOT_DAILY_SPACING:
        raise DataError(
            f"the rows are not daily bars: consecutive dates are a median {spacing:g} business "
            f"days apart (first {iso_date(index[0])}, {iso_date(index[1])}); weekly or "
            "monthly data? stressflow's windows and stage durations count trading days, so "
            "give one row per trading day"
        )


def _check_dates(index: pd.DatetimeIndex) -> None:
    duplicated = index.duplicated()
    if duplicated.any():
        first = index[np.flatnonzero(duplicated)[0]]
        raise DataError(
            f"duplicate date {iso_date(first)} ({int(duplicated.sum())} duplicated row(s)); "
            "each date must occur once"
        )
    values = index.asi8
    backwards = np.flatnonzero(values[1:] < values[:-1])
    if backwards.size:
        i = int(backwards[0]) + 1
        raise DataError(
            f"dates are not sorted: {iso_date(index[i])} (row {i}) comes after "
            f"{iso_date(index[i - 1])}; sort the rows by date first (e.g. "
            "frame.sort_values('date') or frame.sort_index())"
        )
