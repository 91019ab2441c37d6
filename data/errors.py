"""Exception and warning classes raised by :mod:`stressflow.data`.

Every problem found in user data is either

* fatal, raised as :class:`DataError` with a message that names the offending column and the
  first offending date (or row), or
* treated in a documented way (the affected observations become missing), counted in the
  :class:`~stressflow.data.DataReport` and announced with a :class:`DataWarning` that gives
  the count and the first dates; or, for the dates themselves, normalised: a time of day on a
  daily row is dropped and counted in a :class:`DataWarning`
  (:func:`~stressflow.data.read_prices`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pandas as pd

__all__ = ["DataError", "DataWarning"]


class DataError(ValueError):
    """Input data that cannot be used as given.

    A subclass of :class:`ValueError`, so ``except ValueError`` also catches it. The message
    names the column and the first offending date (or row) and, where useful, says how to fix
    the input.
    """


class DataWarning(UserWarning):
    """A data problem that was handled by a documented, counted treatment.

    The affected observations are set to missing (they stay in the time axis); the count is
    also recorded in :class:`~stressflow.data.DataReport`.
    """


def iso_date(value: object) -> str:
    """A date as ``YYYY-MM-DD``, the one form every message of the package uses."""
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def format_dates(dates: Sequence[pd.Timestamp] | pd.Index, limit: int = 5) -> str:
    """Format the first ``limit`` dates as ISO strings, with a count of the rest."""
    dates = list(dates)
    shown = ", ".join(iso_date(d) for d in dates[:limit])
    if len(dates) > limit:
        shown += f", ... ({len(dates) - limit} more)"
    return shown


def warn_data(message: str) -> None:
    """Issue a :class:`DataWarning` attributed to the caller of the public function."""
    warnings.warn(message, DataWarning, stacklevel=4)
