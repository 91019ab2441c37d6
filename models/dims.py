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
#: The stages other than forced flow, in their identified order (increasing mean of the
#: ordering feature) when forced flow is identified by its own feature.
STAGE_RANKED = "stage_ranked"
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

#: The four stress stages of the framework, in the order stress builds (the stage ladder).
LADDER: tuple[str, ...] = ("orderly", "fragile", "margin_pressure", "forced_flow")

#: The stage for high-volatility *discretionary* repricing (a persistent, orderly selloff or
#: rally): an addition to the framework's four stages so that such days have somewhere to go
#: other than forced flow. It sits outside the ladder (it can be entered from and left to any
#: stage) and is not "margin pressure or worse".
DISCRETIONARY = "discretionary"

#: Every stage name, in model index order: the ladder, then the discretionary stage. A model
#: with K stages uses the first K (:func:`stage_names`).
STAGES: tuple[str, ...] = (*LADDER, DISCRETIONARY)

#: The stage whose probability is the probability of compulsion.
FORCED_FLOW = "forced_flow"

#: The stages that count as "margin pressure or worse" (a selloff or rally under constraint).
MARGIN_OR_WORSE: tuple[str, ...] = ("margin_pressure", "forced_flow")


def stage_names(n_stages: int) -> tuple[str, ...]:
    """The stage names of a model with ``n_stages`` stages (4: the ladder; 5: + discretionary)."""
    if n_stages not in (len(LADDER), len(STAGES)):
        raise ValueError(f"a stage model has {len(LADDER)} or {len(STAGES)} stages, "
                         f"got {n_stages!r}")
    return STAGES[:n_stages]


#: The four built-in observables, in their canonical order.
FEATURES: tuple[str, ...] = ("spread", "volatility", "volume", "impact")

#: Quantiles across posterior draws reported beside every posterior-mean probability.
DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95)
