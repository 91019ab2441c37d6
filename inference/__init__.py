"""Fitting the stage model and reading its results.

- :func:`fit`: NUTS fit returning an ``xarray.DataTree`` (ArviZ 1.x) with posterior stage
  probabilities per day;
- :func:`check_fit`: R-hat, ESS, divergences and chain agreement on the stage meanings;
- :mod:`stressflow.inference.schema`: the fit file's layout, :func:`save_fit` / :func:`load_fit`
  and every reader of a fit;
- :mod:`stressflow.inference.postprocess.summaries`: pandas views (probabilities, durations,
  summary);
- :mod:`stressflow.inference.postprocess.predictive`: posterior predictive checks
  (:func:`posterior_predictive`, :func:`ppc_table`);
- :mod:`stressflow.inference.postprocess.paths` / :mod:`~stressflow.inference.apps.episodes` /
  :mod:`~stressflow.inference.apps.catalogue`: joint stage paths (FFBS), episode scores
  ``p_compulsion`` and the crisis catalogue;
- :mod:`stressflow.inference.apps.feed` / :mod:`~stressflow.inference.apps.backtest`: the causal
  (filtered) feed for risk models, updates without refitting, forecasts, exports and rolling
  out-of-sample evaluation;
- :mod:`stressflow.inference.apps.many`: many fits at once (assets or windows) on Dask workers,
  a fit file each and one labelled summary;
- :mod:`stressflow.inference.present.plots`: matplotlib figures.

The functions ``episodes``, ``feed`` and ``backtest`` share their module's name, so they are
not re-exported here (that would hide the module): import them from their modules.
"""

from stressflow.inference.apps.catalogue import load_catalogue, score_catalogue
from stressflow.inference.apps.episodes import detect_episodes
from stressflow.inference.apps.feed import FEED_SCHEMA, export, forecast, read_feed, update
from stressflow.inference.fitting.fit import SAMPLERS, fit
from stressflow.inference.postprocess.diagnostics import Diagnostics, FitWarning, check_fit
from stressflow.inference.postprocess.paths import sample_stage_paths
from stressflow.inference.postprocess.predictive import posterior_predictive, ppc_table
from stressflow.inference.postprocess.summaries import (
    expected_durations,
    stage_means,
    stage_probabilities,
    stage_shares,
    stationary_shares,
    summary,
    top_days,
    transition_matrix,
)
from stressflow.inference.schema import load_fit, save_fit

__all__ = [
    "FEED_SCHEMA",
    "SAMPLERS",
    "Diagnostics",
    "FitWarning",
    "check_fit",
    "detect_episodes",
    "expected_durations",
    "export",
    "fit",
    "forecast",
    "load_catalogue",
    "load_fit",
    "posterior_predictive",
    "ppc_table",
    "read_feed",
    "sample_stage_paths",
    "save_fit",
    "score_catalogue",
    "stage_means",
    "stage_probabilities",
    "stage_shares",
    "stationary_shares",
    "summary",
    "top_days",
    "transition_matrix",
    "update",
]
