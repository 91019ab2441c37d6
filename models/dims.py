"""Dimension names, coordinates and the stage vocabulary, stated once for the whole package.

Every labelled output of stressflow (posterior draws, per-day stage probabilities, summaries)
uses the names below, so that code written against one output works against all of them.

Convention for transition matrices (the only one used anywhere in stressflow)::

    P[i, j] = Pr(stage_t = j | stage_{t-1} = i),   each row sums to 1.

In labelled arrays the row index has dim ``STAGE_FROM`` and the column index ``STAGE_TO``.
"""

from __future__ import annotations

from stressflow.models.messages import require_int

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
#: One market (dataset): fitted separately (:func:`~stressflow.inference.apps.many.fit_many`)
#: or as one asset of a panel model (:mod:`stressflow.models.panel`).
ASSET = "asset"
#: The asset whose previous-day stage drives another's transition (panel spillover).
ASSET_FROM = "asset_from"
#: One ordered pair of distinct assets ``"<from>-><to>"`` (the free spillover coefficients).
ASSET_PAIR = "asset_pair"
#: One observable of one asset in a panel, named ``"<asset>:<observable>"``.
CHANNEL = "channel"
#: One channel other than the assets' ordering channels.
CHANNEL_OTHER = "channel_other"
#: One joint state of a panel: the tuple of every asset's stage.
JOINT_STATE = "joint_state"
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

#: Every named stage, in model index order: the ladder, then the discretionary stage.
STAGES: tuple[str, ...] = (*LADDER, DISCRETIONARY)

#: The stage whose probability is the probability of compulsion.
FORCED_FLOW = "forced_flow"

#: The stages that count as "margin pressure or worse" (a selloff or rally under constraint).
MARGIN_OR_WORSE: tuple[str, ...] = ("margin_pressure", "forced_flow")

#: Fewest stages a model can have (calm and forced flow).
MIN_STAGES = 2

#: Name prefix of a stage beyond the five named ones: model index k >= 5 is ``stage_<k>``.
EXTRA_STAGE_PREFIX = "stage_"


def stage_names(n_stages: int) -> tuple[str, ...]:
    """The stage names of a model with ``n_stages`` stages, in model index order.

    ====  =====================================================================
    K     stages
    ====  =====================================================================
    2     orderly, forced_flow
    3     orderly, fragile, forced_flow
    4     orderly, fragile, margin_pressure, forced_flow (:data:`LADDER`)
    5     the ladder, then discretionary (:data:`STAGES`)
    >= 6  :data:`STAGES`, then ``stage_5``, ``stage_6``, ... (named by model index)
    ====  =====================================================================

    With fewer than four stages the ladder keeps its ends (calm and compulsion) and, for three,
    the long-lived fragile stage between them. Every model has ``orderly`` and ``forced_flow``.
    A stage beyond the five named ones is, like discretionary, outside the ladder: another
    non-compulsion regime, ordered above discretionary on the ordering feature.
    """
    n_stages = require_int("n_stages", n_stages, MIN_STAGES)
    if n_stages < len(LADDER):
        return (LADDER[0], *LADDER[1:n_stages - 1], FORCED_FLOW)
    extra = tuple(f"{EXTRA_STAGE_PREFIX}{k}" for k in range(len(STAGES), n_stages))
    return (*STAGES, *extra)[:n_stages]


def ladder_size(n_stages: int) -> int:
    """How many of the first stages of a ``n_stages`` model are on the ladder (the rest,
    discretionary and ``stage_<k>``, are outside it)."""
    return min(n_stages, len(LADDER))


#: The four built-in observables, in their canonical order.
FEATURES: tuple[str, ...] = ("spread", "volatility", "volume", "impact")

#: Quantiles across posterior draws reported beside every posterior-mean probability.
DEFAULT_QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.95)
