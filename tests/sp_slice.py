"""A slice of the bundled S&P 500 as a user's file would read, for the bad-input tests
(``test_data_bad_input.py``, ``test_dates.py``), which edit a copy of it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from stressflow.data import DataWarning, load_dataset, prepare

DAY = "2000-03-15"  # a date inside the slice, after the warm-up
START = "2000-01-01"  # window start used where warm-up should not matter


def sp_1999_2000() -> pd.DataFrame:
    """S&P 500 1999-2000 (505 rows), with a ``date`` column as a user's file would have."""
    return load_dataset("sp500").loc["1999":"2000"].reset_index()


def row(frame: pd.DataFrame, date: str = DAY) -> int:
    """Position of ``date`` in the frame's ``date`` column."""
    return int(np.flatnonzero(frame["date"] == pd.Timestamp(date))[0])


def quiet(*args, **kwargs):
    """``prepare`` with its DataWarnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return prepare(*args, **kwargs)
