"""Market data for stressflow: bundled real series, validation and stress observables.

Typical use::

    from stressflow.data import prepare

    prep = prepare("sp500", start="1990-01-01", end="2018-12-31")
    prep.features      # standardised spread, volatility, volume, impact (NaN = missing)
    print(prep.report)  # what was treated, counted

    later = prepare("sp500", start="2019-01-01", transform=prep.transform)  # same scale

Public API
----------
list_datasets, load_dataset
    The bundled real daily datasets (prices ``sp500``, ``spy``, ``vix``, ``vw``, ``gme``;
    rate series ``ted``, ``baa10y``, ``treasury``); their provenance and terms of use are in
    ``datasets/SOURCES.md``.
read_prices
    Read and validate a CSV/Parquet file, dataset or DataFrame.
prepare, PreparedData
    Compute the observables (formulas and references in
    :mod:`stressflow.data.observables`) and standardise them.
FeatureTransform
    The fitted standardisation; serialisable with ``to_dict``/``from_dict``.
compute_covariates, list_covariates, COVARIATES
    Transition covariates (credit/funding spreads, VIX, a leverage build-up proxy, user
    columns) on the price calendar; ``prepare(..., transition_covariates=...)`` adds them,
    standardised, as ``PreparedData.covariates`` (formulas in
    :mod:`stressflow.data.covariates`).
DataReport
    Counts of each treatment applied to the data.
DataError, DataWarning
    Raised for unusable data / issued for counted treatments.
"""

from __future__ import annotations

from .bundled import list_datasets, load_dataset
from .covariate_join import compute_covariates
from .covariates import COVARIATES, list_covariates
from .errors import DataError, DataWarning
from .observables import RETURN_FLOOR
from .pipeline import GAP_BUSINESS_DAYS, PreparedData, prepare
from .prices import REQUIRED_COLUMNS, read_prices
from .report import DataReport
from .transform import FeatureTransform

__all__ = [
    "COVARIATES",
    "GAP_BUSINESS_DAYS",
    "REQUIRED_COLUMNS",
    "RETURN_FLOOR",
    "DataError",
    "DataReport",
    "DataWarning",
    "FeatureTransform",
    "PreparedData",
    "compute_covariates",
    "list_covariates",
    "list_datasets",
    "load_dataset",
    "prepare",
    "read_prices",
]
