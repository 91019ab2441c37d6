"""Argument checks of :func:`~stressflow.data.prepare`: options, dates and the window."""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd
from stressflow.models.messages import require_int, shown

from .errors import DataError

DateLike = str | _dt.date | pd.Timestamp | np.datetime64


def resolve_option(name: str, given, transform, default):
    """The option ``name``: ``given``, else the transform's value, else ``default``."""
    if transform is None:
        return default if given is None else given
    fixed = getattr(transform, name)
    if given is not None and given != fixed:
        raise ValueError(
            f"{name}={shown(given)} conflicts with the given transform "
            f"({name}={shown(fixed)}); new data must be computed exactly like the fitting data, "
            "so leave it out"
        )
    return fixed


def check_window(name: str, value) -> int:
    """``value`` as an int >= 1; ValueError naming ``name`` otherwise (:func:`require_int`)."""
    return require_int(name, value, 1)


def to_timestamp(value: DateLike | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, int | float | np.number | bool | np.bool_):  # pandas: ns after 1970
        raise DataError(f"{name}={shown(value)} is not a date; give one as text such as "
                        "'2004-01-02', or a datetime")
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}={shown(value)} is not a date") from exc
    if pd.isna(stamp):
        raise DataError(f"{name}={shown(value)} is not a date")
    return stamp.tz_localize(None) if stamp.tz is not None else stamp


def select_window(
    index: pd.DatetimeIndex, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> np.ndarray:
    span = f"the data cover {index[0]:%Y-%m-%d} .. {index[-1]:%Y-%m-%d}"
    if start is not None and end is not None and start > end:
        raise DataError(f"start {start:%Y-%m-%d} is after end {end:%Y-%m-%d}; {span}")
    if start is not None and start > index[-1]:
        raise DataError(f"start {start:%Y-%m-%d} is after the last date; {span}")
    if end is not None and end < index[0]:
        raise DataError(f"end {end:%Y-%m-%d} is before the first date; {span}")
    mask = np.ones(len(index), dtype=bool)
    if start is not None:
        mask &= index >= start
    if end is not None:
        mask &= index <= end
    return mask
