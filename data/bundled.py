"""Real daily market data bundled with stressflow.

The files in ``stressflow/data/datasets/`` are byte-identical copies of public daily series;
``datasets/SOURCES.md`` gives their provenance, known bad rows and terms of use (research and
tests only, do not republish). They are located with :mod:`importlib.resources`, so they are
found in a wheel install as well as in a source checkout.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import pandas as pd

__all__ = ["DATASETS", "list_datasets", "load_dataset"]

_PACKAGE = "stressflow.data"
_FOLDER = "datasets"


@dataclass(frozen=True)
class _Dataset:
    file: str
    description: str


#: Bundled datasets: name -> file and one-line description (details in ``SOURCES.md``).
DATASETS: dict[str, _Dataset] = {
    "sp500": _Dataset(
        "sp500_index_daily_1983_2018.csv",
        "S&P 500 index (Yahoo ^GSPC), OHLC and composite volume; open is unreliable "
        "(often the previous close); one flat row 1983-06-30; 9/11 gap",
    ),
    "spy": _Dataset(
        "spy_etf_daily_1993_2018.csv",
        "SPDR S&P 500 ETF (SPY), raw OHLC, dividend-adjusted adj_close and real share volume",
    ),
    "vix": _Dataset(
        "vix_daily_1990_2018.csv",
        "Cboe VIX index, OHLC without volume; 1990-1991 rows are close-only (O=H=L=C)",
    ),
    "vw": _Dataset(
        "vw_ordinary_xetra_daily_1997_2017.csv",
        "Volkswagen ordinary shares (Xetra, EUR); 40 zero-volume holiday rows, rows with "
        "close outside [low, high], 2008-10-28 wrong in the source",
    ),
    "gme": _Dataset(
        "gme_daily_2002_2018.csv",
        "GameStop (Yahoo GME), OHLC and share volume; not adjusted for the 2022 split",
    ),
}


def _unknown(name: object) -> ValueError:
    valid = ", ".join(repr(n) for n in DATASETS)
    return ValueError(f"unknown dataset {name!r}; valid names are {valid}")


@functools.cache
def _read(name: str) -> pd.DataFrame:
    entry = DATASETS[name]
    with resources.files(_PACKAGE).joinpath(_FOLDER, entry.file).open("rb") as handle:
        frame = pd.read_csv(handle)
    index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date"), format="%Y-%m-%d"), name="date")
    frame.index = index
    return frame.astype("float64")


def load_dataset(name: str) -> pd.DataFrame:
    """Load one bundled dataset exactly as stored (no cleaning).

    Parameters
    ----------
    name : str
        One of ``"sp500"``, ``"spy"``, ``"vix"``, ``"vw"``, ``"gme"`` (see
        :func:`list_datasets`).

    Returns
    -------
    pandas.DataFrame
        A new frame with a :class:`~pandas.DatetimeIndex` named ``"date"`` and ``float64``
        columns as in the file: ``open, high, low, close, adj_close, volume`` (``vix`` has
        ``open, high, low, close`` only). Known bad rows (see ``SOURCES.md``) are kept; use
        :func:`~stressflow.data.prepare` for validated observables.

    Raises
    ------
    ValueError
        If ``name`` is not a bundled dataset; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise _unknown(name)
    return _read(name).copy()


def list_datasets() -> pd.DataFrame:
    """Describe the bundled datasets.

    Returns
    -------
    pandas.DataFrame
        Indexed by dataset name, with columns ``description``, ``first`` and ``last``
        (first and last date), ``rows``, ``columns`` (comma-separated column names) and
        ``source_file`` (file name inside ``stressflow/data/datasets``).
    """
    records = []
    for name, entry in DATASETS.items():
        frame = _read(name)
        records.append(
            {
                "name": name,
                "description": entry.description,
                "first": frame.index[0],
                "last": frame.index[-1],
                "rows": len(frame),
                "columns": ", ".join(frame.columns),
                "source_file": entry.file,
            }
        )
    return pd.DataFrame.from_records(records, index="name")
