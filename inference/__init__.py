"""Fitting the stage model and reading its results.

- :func:`fit`: NUTS fit returning an ``xarray.DataTree`` (ArviZ 1.x) with posterior stage
  probabilities per day;
- :func:`check_fit`: R-hat, ESS, divergences and chain agreement on the stage meanings;
- :mod:`stressflow.inference.results`: pandas views (probabilities, durations, summary) and
  netCDF save/load.
"""

from stressflow.inference.diagnostics import Diagnostics, check_fit
from stressflow.inference.fit import SAMPLERS, FitWarning, fit
from stressflow.inference.results import (
    expected_durations,
    load_fit,
    save_fit,
    stage_means,
    stage_probabilities,
    stage_shares,
    summary,
    top_days,
    transition_matrix,
)

__all__ = [
    "SAMPLERS",
    "Diagnostics",
    "FitWarning",
    "check_fit",
    "expected_durations",
    "fit",
    "load_fit",
    "save_fit",
    "stage_means",
    "stage_probabilities",
    "stage_shares",
    "summary",
    "top_days",
    "transition_matrix",
]
