"""Reading and validating daily price/volume data.

:func:`read_prices` turns a CSV or Parquet file, a bundled dataset name or a DataFrame into a
new frame indexed by a sorted, unique :class:`~pandas.DatetimeIndex` named ``"date"``, with
the standard columns (``open, high, low, close, adj_close, volume``) as ``float64``. Checks
that make the data unusable raise :class:`~stressflow.data.DataError`; the message names the
column and the first offending date. Problems that only make some observations unusable
(empty cells, zero volume, close outside the day's range, ...) are left in place here and
treated, counted and reported by :func:`~stressflow.data.prepare`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from stressflow.models.messages import shown

from .bundled import DATASETS, load_dataset
from .dates import _check_daily, _check_dates, _drop_time_of_day, _parse_dates
from .errors import DataError, iso_date

__all__ = ["PRICE_COLUMNS", "REQUIRED_COLUMNS", "STANDARD_COLUMNS", "read_prices"]

#: Columns that :func:`~stressflow.data.prepare` needs (``open`` is not used: the S&P 500
#: open is unreliable, see ``SOURCES.md``).
REQUIRED_COLUMNS: tuple[str, ...] = ("high", "low", "close", "volume")
#: Price columns, which must be > 0 where present (only ``high, low, close`` are checked
#: for positivity; ``open`` and ``adj_close`` are carried along unchecked).
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
#: Columns converted to ``float64`` (a non-numeric entry is an error).
STANDARD_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")

_WHY_REQUIRED = {
    "high": "the spread and volatility observables use the daily high-low range",
    "low": "the spread and volatility observables use the daily high-low range",
    "close": "the spread and impact observables use closing prices",
    "volume": "the volume and impact observables need traded volume",
}

Source = str | os.PathLike | pd.DataFrame


def _available(frame: pd.DataFrame) -> str:
    return ", ".join(repr(str(c)) for c in frame.columns)


def _load_source(source: Source) -> pd.DataFrame:
    """Return a new, unvalidated frame from a path, dataset name or DataFrame."""
    if isinstance(source, pd.DataFrame):
        return source.copy(deep=True)
    if isinstance(source, str) and source in DATASETS:
        if DATASETS[source].kind != "prices":
            raise DataError(
                f"bundled dataset {source!r} is a rate series without prices; use it as a "
                "transition covariate (prepare(..., transition_covariates=...)) or load it "
                "with load_dataset"
            )
        return load_dataset(source)
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            "source must be a path to a .csv or .parquet file, a bundled dataset name "
            f"({', '.join(DATASETS)}) or a pandas DataFrame, not {type(source).__name__}"
        )
    path = Path(source)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(source)!r} is neither an existing file nor a bundled dataset "
            f"(bundled: {', '.join(DATASETS)})"
        )
    if suffix == ".csv":
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"{str(path)!r} is empty: no header and no rows") from None
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    raise DataError(f"unsupported file type {suffix!r} for {str(path)!r}; use .csv or .parquet")


def _flat_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Column labels with several levels (a download of tickers x fields) reduced to the field
    names when every other level holds one value (one ticker); DataError otherwise."""
    if not isinstance(frame.columns, pd.MultiIndex):
        return frame
    wanted = {*STANDARD_COLUMNS, "date"}
    values = [frame.columns.get_level_values(i).unique() for i in range(frame.columns.nlevels)]
    # the field level holds the most field names (a ticker such as LOW or OPEN holds one)
    hits = [len(wanted & {str(v).strip().lower().replace(" ", "_") for v in level})
            for level in values]
    field = int(np.argmax(hits))
    others = [i for i in range(len(values)) if i != field]
    if hits[field] < 2 or any(len(values[i]) > 1 for i in others):
        shown_levels = "; ".join(f"level {i}: {', '.join(map(repr, level[:5]))}"
                                 for i, level in enumerate(values))
        ticker = next((i for i in others if len(values[i]) > 1), others[0])
        raise DataError(
            f"the columns have {len(values)} levels ({shown_levels}); give one market's "
            f"columns, e.g. frame.xs({values[ticker][0]!r}, axis=1, level={ticker}) for one "
            "ticker of a download"
        )
    frame = frame.copy()
    frame.columns = frame.columns.get_level_values(field)
    return frame


def _apply_mapping(frame: pd.DataFrame, columns: Mapping[str, str] | None) -> pd.DataFrame:
    if not columns:
        return frame
    names = [str(c) for c in frame.columns]
    absent = [k for k in columns if k not in names]
    if absent:
        raise DataError(
            f"columns= maps {', '.join(repr(k) for k in absent)}, but the data has no such "
            f"column; available columns: {_available(frame)}"
        )
    frame = frame.rename(columns=dict(columns))
    duplicated = frame.columns[frame.columns.duplicated()].unique()
    if len(duplicated):
        raise DataError(
            f"after applying columns=, the column name(s) {list(map(str, duplicated))} occur "
            "more than once; drop or rename the original column first"
        )
    return frame


def _name_key(name: object) -> str:
    return "_".join(str(name).strip().lower().split())


def _match_standard_names(frame: pd.DataFrame, date_column: str) -> pd.DataFrame:
    """Rename the columns whose names differ from stressflow's (``date_column`` and
    :data:`STANDARD_COLUMNS`) only in letter case, surrounding spaces or spaces for
    underscores (``Date``, ``High``, ``Adj Close`` of a Yahoo or yfinance download), where
    stressflow's own name is absent and exactly one column matches; several matches are left
    for the missing-column error, which names them."""
    present = {str(c) for c in frame.columns}
    renames = {}
    for target in (date_column, *STANDARD_COLUMNS):
        if target in present:
            continue
        hits = [c for c in frame.columns if _name_key(c) == _name_key(target)]
        if len(hits) == 1:
            renames[hits[0]] = target
    return frame.rename(columns=renames) if renames else frame


def _set_date_index(frame: pd.DataFrame, date_column: str) -> pd.DataFrame:
    if date_column in frame.columns:
        label = f"date column {date_column!r}"
        index = _drop_time_of_day(_parse_dates(frame[date_column], label), label)
        frame = frame.drop(columns=[date_column])
    elif isinstance(frame.index, pd.DatetimeIndex | pd.PeriodIndex):
        index = _drop_time_of_day(_parse_dates(frame.index, "the DatetimeIndex"),
                                  "the DatetimeIndex")
    else:
        raise DataError(
            f"no date column {date_column!r} and the index is not a DatetimeIndex; "
            f"available columns: {_available(frame)} (pass date_column= or columns=)"
            f"{_layout_hint(frame, date_column)}"
        )
    frame.index = index.rename("date")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _layout_hint(frame: pd.DataFrame, date_column: str) -> str:
    """Why a date column may not have been found: a file read with the wrong separator (one
    column whose name holds the others), or several columns that differ from its name only in
    letter case or spacing (:func:`_match_standard_names` takes a single one)."""
    names = [str(c) for c in frame.columns]
    if len(names) == 1:
        sep = next((c for c in (";", "\t", "|") if c in names[0]), None)
        if sep is not None:
            return (f"; the file seems to separate its columns with {sep!r}: read it with "
                    f"pandas.read_csv(path, sep={sep!r}) (and decimal=',' if numbers use a "
                    "decimal comma) and pass the DataFrame")
    same = [n for n in names if _name_key(n) == _name_key(date_column)]
    if len(same) > 1:
        return (f"; several columns could be it ({', '.join(map(repr, same))}): pass "
                f"date_column= (or drop the others)")
    return ""


_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?")


def to_numeric_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """Return ``frame[column]`` as ``float64``; raise DataError on a non-numeric entry.

    Empty cells (NaN, None or blank strings) become NaN and are treated as missing
    observations later. ``inf`` is an error as well, since no price or volume is infinite.
    """
    series = frame[column]
    if pd.api.types.is_bool_dtype(series):
        raise DataError(f"column {column!r} is boolean; expected numbers")
    if pd.api.types.is_numeric_dtype(series):
        numeric = series.astype("float64")
    else:
        values = series.astype(object)
        blank = values.map(lambda v: isinstance(v, str) and not v.strip())
        values = values.mask(blank.astype(bool), np.nan)
        numeric = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = numeric.isna() & values.notna()
        if bad.any():
            date = frame.index[np.flatnonzero(bad.to_numpy())[0]]
            first = values[bad].iloc[0]
            hint = ""
            if isinstance(first, str) and _THOUSANDS.fullmatch(first.strip()):
                hint = ("; it looks like a number with thousands separators: read the file with "
                        "pandas.read_csv(path, thousands=',') and pass the DataFrame (or with "
                        "decimal=',' if the comma is the decimal mark)")
            raise DataError(
                f"column {column!r} has a non-numeric value "
                f"{shown(first)} on {iso_date(date)} ({int(bad.sum())} such row(s)){hint}"
            )
    infinite = np.isinf(numeric.to_numpy())
    if infinite.any():
        date = frame.index[np.flatnonzero(infinite)[0]]
        raise DataError(f"column {column!r} has an infinite value on {iso_date(date)}")
    return numeric


def first_date(frame: pd.DataFrame, mask: pd.Series | np.ndarray) -> str:
    """ISO date of the first True entry of ``mask``."""
    return iso_date(frame.index[np.flatnonzero(np.asarray(mask, dtype=bool))[0]])


def require_positive(frame: pd.DataFrame, column: str, what: str, why: str) -> None:
    """Raise DataError unless ``frame[column] > 0`` wherever it is present, with the first bad
    value and date: "<what> <value> on <date> (<n> such row(s)); <why>"."""
    bad = (frame[column] <= 0).to_numpy()
    if bad.any():
        raise DataError(f"{what} {float(frame[column].to_numpy()[bad][0]):.6g} on "
                        f"{first_date(frame, bad)} ({int(bad.sum())} such row(s)); {why}")


def _check_values(frame: pd.DataFrame) -> None:
    for column in ("high", "low", "close"):
        require_positive(frame, column, f"column {column!r} has a non-positive price",
                         "prices must be > 0")
    inverted = (frame["high"] < frame["low"]).to_numpy()
    if inverted.any():
        raise DataError(
            f"high < low on {first_date(frame, inverted)} ({int(inverted.sum())} such "
            "row(s)); check the column mapping or the source data"
        )
    negative = (frame["volume"] < 0).to_numpy()
    if negative.any():
        raise DataError(
            f"column 'volume' is negative on {first_date(frame, negative)} "
            f"({int(negative.sum())} such row(s)); volume must be >= 0"
        )


def read_prices(
    source: Source,
    *,
    columns: Mapping[str, str] | None = None,
    date_column: str = "date",
) -> pd.DataFrame:
    """Read and validate daily price/volume data.

    Parameters
    ----------
    source : str, path-like or pandas.DataFrame
        A path to a ``.csv`` or ``.parquet`` file, a bundled dataset name (see
        :func:`~stressflow.data.list_datasets`), or a DataFrame with a date column or a
        :class:`~pandas.DatetimeIndex` (or daily :class:`~pandas.PeriodIndex`). Dates may be
        text, datetimes or ``YYYYMMDD`` integers; other numbers are refused. Columns with two
        levels (a download of tickers x fields) are read when there is one ticker. A DataFrame
        is never modified.
    columns : mapping, optional
        Renames the user's columns to stressflow's, e.g. ``{"Schluss": "close", "Vol":
        "volume"}``; can also rename the date column (``{"Datum": "date"}``). Not needed for
        names that differ from stressflow's only in letter case, surrounding spaces or a
        space for an underscore (``Date, Open, High, Low, Close, Adj Close, Volume`` of a
        Yahoo or yfinance download): those are matched when stressflow's own name is absent
        and exactly one column matches.
    date_column : str, default ``"date"``
        Name (after renaming) of the date column. If absent, a DatetimeIndex is used.

    Returns
    -------
    pandas.DataFrame
        A new frame indexed by a sorted, unique DatetimeIndex named ``"date"`` of trading days
        (rows in reverse date order throughout, newest first as some vendors write them, are
        put in date order; any other disorder is an error):
        a time zone is dropped (the local date and time as written, also where the UTC offset
        changes with daylight saving) and so is a time of day (a :class:`DataWarning` counts
        the dates that had one), so that series joined by date line up. The standard
        columns present (``open, high, low, close, adj_close, volume``) are ``float64`` with
        empty cells as NaN; other columns are kept unchanged (``prepare`` validates the
        spread and extra columns it uses).

    Raises
    ------
    DataError
        If ``high``, ``low``, ``close`` or ``volume`` is missing (the message lists the
        available columns); if ``columns=`` names an absent column; on an unparseable,
        duplicate or out-of-order date; on a non-numeric or infinite entry; if ``high``,
        ``low`` or ``close`` is <= 0, ``high < low``, or ``volume < 0``; if the rows are
        not daily (from 20 rows on, consecutive dates a median 4 or more business days apart:
        weekly or monthly bars). Each message names
        the column and the first offending date. If there are no rows (e.g. a CSV with only a
        header) or the file is empty; if two rows fall on one date at different times of day.
    FileNotFoundError
        If ``source`` is a string that is neither a file nor a bundled dataset name.
    """
    frame = _flat_columns(_load_source(source))
    frame = _apply_mapping(frame, columns)
    frame = _match_standard_names(frame, date_column)
    frame = _set_date_index(frame, date_column)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        reasons = "; ".join(f"{c} is required: {_WHY_REQUIRED[c]}" for c in missing)
        alike = {c: [str(n) for n in frame.columns if _name_key(n) == c] for c in missing}
        alike = {c: names for c, names in alike.items() if names}
        suggestion = "".join(
            f"; several columns could be {c!r} ({', '.join(map(repr, names))}): pass "
            f"columns={{{names[0]!r}: {c!r}}} (or drop the others)" for c, names in alike.items())
        raise DataError(
            f"missing required column(s) {missing} ({reasons}); available columns: "
            f"{_available(frame)}{suggestion}"
        )
    if len(frame) == 0:
        raise DataError(
            f"the data have no rows (only a header with the columns {_available(frame)}); "
            "give at least one dated row"
        )
    if len(frame) > 1 and (np.diff(frame.index.asi8) < 0).all():
        frame = frame.iloc[::-1]  # newest first throughout, as some vendors write files
    _check_dates(frame.index)
    _check_daily(frame.index)
    for column in STANDARD_COLUMNS:
        if column in frame.columns:
            frame[column] = to_numeric_column(frame, column)
    _check_values(frame)
    return frame
