"""Stage probabilities for downstream risk models: a causal feed, updated without refitting.

A risk model may only use, at date t, information available at t. The smoothed probabilities
``Pr(stage_t = k | y_1..y_T)`` of a fit use the whole sample (the future included) and leak it
into any backtest; this module serves the *filtered* probabilities instead.

- :func:`feed`: one row per date (the schema :data:`FEED_SCHEMA`, version
  :data:`FEED_SCHEMA_VERSION`): ``Pr(stage_t = k | y_1..y_t)`` integrated over the parameter
  posterior with 5%/95% quantiles across draws, ``p_compulsion_t = Pr(stage_t = forced_flow |
  y_1..y_t)`` and ``p_margin_or_worse_t = Pr(stage_t in {margin_pressure, forced_flow} |
  y_1..y_t)`` with their intervals, the fit's smoothed probabilities in separate ``smoothed_*``
  columns, and the data-availability flags.
- :func:`update`: extends a fit to new days with the stored posterior draws, the stored filter
  state (``Pr(stage_T = k | y_1..y_T, theta_s)`` per draw) and the stored feature transform and
  price rows, in time proportional to the number of new days. The result equals filtering the
  whole series from the start with the same draws, and the new observables equal those
  :func:`stressflow.data.prepare` computes on the whole series. Nothing stored is rewritten:
  new days get filtered values only (smoothed NaN, ``in_fit_window`` False).
- :func:`forecast`: ``Pr(stage_{T+h} = k | y_1..y_T)`` for h = 1..H and the first-passage
  probability ``Pr(stage_{T+j} = forced_flow for some j = 1..h | y_1..y_T)``.
- :func:`export`: the feed as CSV or Parquet with its schema metadata.

Look-ahead, stated precisely: the filtered probability at t uses observations up to t, but on
days inside the fit window the parameter posterior was estimated from data up to the fit's
end (``fit_data_end``). Days after ``fit_data_end`` are out of sample in both respects; a
rolling evaluation that is out of sample throughout is :func:`stressflow.inference.apps.backtest
.backtest`.
"""

from stressflow.inference.apps.feed.columns import (
    COMPULSION_STAGE,
    FEED_SCHEMA,
    FEED_SCHEMA_VERSION,
    INTERVAL,
    MARGIN_OR_WORSE,
    PANEL_FEED_SCHEMA,
    FeedColumn,
    feed,
)
from stressflow.inference.apps.feed.export import export, read_feed
from stressflow.inference.apps.feed.forecast import forecast
from stressflow.inference.apps.feed.update import update

__all__ = [
    "COMPULSION_STAGE",
    "FEED_SCHEMA",
    "FEED_SCHEMA_VERSION",
    "PANEL_FEED_SCHEMA",
    "INTERVAL",
    "MARGIN_OR_WORSE",
    "FeedColumn",
    "export",
    "feed",
    "forecast",
    "read_feed",
    "update",
]
