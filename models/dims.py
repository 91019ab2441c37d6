"""Dimension names, coordinates and the stage vocabulary, stated once for the whole package.

Every labelled output of stressflow (posterior draws, per-day stage probabilities, summaries)
uses the names below, so that code written against one output works against all of them.

Convention for transition matrices (the only one used anywhere in stressflow)::

    P[i, j] = Pr(stage_t = j | stage_{t-1} = i),   each row sums to 1.

In labelled arrays the row index has dim ``STAGE_FROM`` and the column index ``STAGE_TO``.
"""

from __future__ import annotations

CHAIN = "chain"
DRAW = "draw"
TIME = "time"
STAGE = "stage"
STAGE_FROM = "stage_from"
STAGE_TO = "stage_to"
FEATURE = "feature"
#: The observables other than the ordering one (the free stage means ``mu_other``).
FEATURE_OTHER = "feature_other"
#: A covariate driving the transition probabilities (time-varying P).
COVARIATE = "covariate"
QUANTILE = "quantile"
#: One sampled joint stage path (FFBS), pooled over posterior draws.
SAMPLE = "sample"
#: One selloff or rally episode in an episode table.
EPISODE = "episode"
#: Forecast horizon in trading days (h = 1..H).
HORIZON = "horizon"
#: One market (dataset) among several fitted separately (:func:`~stressflow.inference.apps.many
#: .fit_many`).
ASSET = "asset"
#: One fit window (start, end) of one series among several (:func:`~stressflow.inference.apps
#: .many.fit_windows`).
WINDOW = "window"

#: The four stress stages, in their identified order (increasing mean volatility).
STAGES: tuple[str, ...] = ("orderly", "fragile", "margin_pressure", "forced_flow")

#: The four built-in observables, in their canonical order.
FEATURES: tuple[str, ...] = ("spread", "volatility", "volume", "impact")

#: Quantiles across posterior draws reported beside every posterior-mean probability.
DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95)
