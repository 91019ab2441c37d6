"""Real daily market data bundled with stressflow.

The files in ``stressflow/data/datasets/`` are byte-identical copies of public daily series;
``datasets/SOURCES.md`` gives their provenance, known bad rows and terms of use (research and
tests only, do not republish). They are located with :mod:`importlib.resources`, so they are
found in a wheel install as well as in a source checkout.

Two kinds of dataset are bundled: ``"prices"`` (daily OHLC and, except ``vix``, volume; a
source for :func:`~stressflow.data.prepare`) and ``"series"`` (FRED rate series without
OHLCV, used as transition covariates, see :mod:`stressflow.data.covariates`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import pandas as pd

__all__ = ["DATASETS", "KINDS", "list_datasets", "load_dataset"]

_PACKAGE = "stressflow.data"
_FOLDER = "datasets"
#: Dataset kinds: daily prices (OHLC, volume) or single/multi-column rate series.
KINDS: tuple[str, ...] = ("prices", "series")


@dataclass(frozen=True)
class _Dataset:
    file: str
    description: str
    kind: str = "prices"


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
    "ted": _Dataset(
        "us_ted_spread_daily_1986_2017.csv",
        "FRED TEDRATE, 3-month LIBOR minus 3-month T-bill, % (ends 2017-10-30; some "
        "late-December stretches missing)",
        "series",
    ),
    "baa10y": _Dataset(
        "us_baa10y_spread_daily_1986_2017.csv",
        "FRED BAA10Y, Moody's seasoned Baa corporate yield minus 10-year Treasury, % (ends "
        "2017-11-03)",
        "series",
    ),
    "treasury": _Dataset(
        "us_treasury_yields_daily_1962_2018.csv",
        "FRED/H.15 constant-maturity Treasury yields dgs3mo, dgs2, dgs10, dgs30, %; empty "
        "cells where a maturity had no value (each starts on its own date)",
        "series",
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
        One of ``"sp500"``, ``"spy"``, ``"vix"``, ``"vw"``, ``"gme"`` (prices) or ``"ted"``,
        ``"baa10y"``, ``"treasury"`` (series); see :func:`list_datasets`.

    Returns
    -------
    pandas.DataFrame
        A new frame with a :class:`~pandas.DatetimeIndex` named ``"date"`` and ``float64``
        columns as in the file: prices have ``open, high, low, close, adj_close, volume``
        (``vix`` has ``open, high, low, close`` only); series have ``ted_spread_pct``,
        ``baa10y_pct`` or ``dgs3mo, dgs2, dgs10, dgs30`` (NaN for an empty cell). Known bad
        rows (see ``SOURCES.md``) are kept; use :func:`~stressflow.data.prepare` for
        validated observables.

    Raises
    ------
    ValueError
        If ``name`` is not a bundled dataset; the message lists the valid names.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise _unknown(name)
    return _read(name).copy()


def list_datasets(kind: str | None = None) -> pd.DataFrame:
    """Describe the bundled datasets.

    Parameters
    ----------
    kind : {"prices", "series"}, optional
        Only datasets of this kind; default: all of them, prices first.

    Returns
    -------
    pandas.DataFrame
        Indexed by dataset name, with columns ``kind`` (``"prices"`` or ``"series"``),
        ``description``, ``first`` and ``last`` (first and last date), ``rows``, ``columns``
        (comma-separated column names) and ``source_file`` (file name inside
        ``stressflow/data/datasets``).

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`KINDS`.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    records = []
    for name, entry in DATASETS.items():
        if kind is not None and entry.kind != kind:
            continue
        frame = _read(name)
        records.append(
            {
                "name": name,
                "kind": entry.kind,
                "description": entry.description,
                "first": frame.index[0],
                "last": frame.index[-1],
                "rows": len(frame),
                "columns": ", ".join(frame.columns),
                "source_file": entry.file,
            }
        )
    return pd.DataFrame.from_records(records, index="name")
