"""Rolling out-of-sample evaluation of the risk feed: refit every N days, filter forward.

:func:`backtest` produces, for every date t of an evaluation period, the filtered stage
probabilities ``Pr(stage_t = k | y_1..y_t)`` that a risk model running live would have seen:
the parameters come from a fit to data dated strictly before the refit date at or before t,
and the filter runs from that fit's last day through t with :func:`stressflow.inference.apps.feed
.update` (no refit in between). Each output row records ``fit_data_end``, the last date of the
data its parameters were fitted to, so it can be checked that nothing dated after t was used.
"""

from __future__ import annotations

import pandas as pd
from stressflow.data import DataError, read_prices
from stressflow.data.window import to_timestamp
from stressflow.inference.apps.cluster import (
    capture_warnings,
    open_client,
    replay_warnings,
    run_tasks,
)
from stressflow.inference.apps.feed import FEED_SCHEMA, feed, update
from stressflow.inference.fitting.fit import fit
from stressflow.inference.postprocess.diagnostics import check_fit
from stressflow.models.messages import require_int

__all__ = ["WINDOWS", "backtest"]

#: Training windows: ``"expanding"`` (from ``train_start`` or the first row to the day before
#: the refit date) or ``"rolling"`` (the last ``window_days`` rows before the refit date).
WINDOWS = ("expanding", "rolling")


def backtest(
    data,
    *,
    start,
    end,
    refit_every: int,
    window: str = "expanding",
    window_days: int | None = None,
    train_start=None,
    columns=None,
    date_column: str = "date",
    workers: int | None = None,
    scheduler=None,
    threads_per_task: int = 1,
    **fit_kwargs,
) -> pd.DataFrame:
    """Refit every ``refit_every`` trading days and record filtered probabilities out of sample.

    The evaluation dates are the rows of ``data`` dated in ``start..end``. Refit i happens at
    the evaluation date ``r_i`` (every ``refit_every``-th one, starting with the first); it
    fits the model to rows dated strictly before ``r_i`` (the rows on and after ``r_i`` are not
    even passed to :func:`~stressflow.inference.fitting.fit`), then
    :func:`~stressflow.inference.apps.feed
    .update` filters forward over ``r_i .. r_{i+1} - 1``. Updating the period in one batch
    gives the same filtered values as updating day by day (the filter at t uses rows <= t
    only), so the value at each date t uses parameters from data before ``r_i <= t`` and
    observations up to t.

    Parameters
    ----------
    data : str, path-like or pandas.DataFrame
        Daily prices (see :func:`stressflow.data.read_prices`), covering the training history
        and the evaluation period.
    start, end : date-like
        Evaluation period (inclusive).
    refit_every : int
        Trading days between refits (>= 1).
    window : {"expanding", "rolling"}
        Training window: from ``train_start`` (default: the first row) up to the day before
        the refit date, or its last ``window_days`` rows.
    window_days : int, optional
        Rows in a rolling window (required for ``"rolling"``; at least 253 keeps the trailing
        observable windows inside the stored rows).
    train_start : date-like, optional
        First date of an expanding window.
    columns, date_column
        As in :func:`stressflow.data.read_prices`.
    workers, scheduler, threads_per_task
        Run the refits (independent of each other) in parallel on Dask
        (:func:`stressflow.inference.apps.cluster.open_client`): a new local cluster of
        ``workers`` processes, or an existing cluster's ``scheduler`` address (or client). Each
        worker fits a refit's window and filters its period, sampling ``threads_per_task``
        chains at once. The output is the same as the serial one's (default: both None), number
        for number: the same fits of the same rows with the same seed.
    **fit_kwargs
        Passed to every :func:`~stressflow.inference.fitting.fit` call (e.g. ``chains``, ``draws``,
        ``tune``, ``seed``, ``spec``, ``spread_column``); the same seed gives the same numbers.

    Returns
    -------
    pandas.DataFrame
        One row per evaluation date with the columns of
        :data:`stressflow.inference.apps.feed.FEED_SCHEMA`: ``filtered_<k> = Pr(stage_t = k |
        y_1..y_t)`` (posterior means and 5%/95% quantiles), ``p_compulsion``,
        ``p_margin_or_worse``, ``smoothed_*`` all NaN (out of sample), ``in_fit_window``
        False, and ``fit_data_end`` < ``date``. ``attrs["refits"]`` lists each refit: its date,
        training window, number of days and convergence diagnostics.

    Raises
    ------
    DataError
        Invalid data (as for fitting), no rows in ``start..end``, or too little history before
        the first refit.
    ValueError
        Invalid options.
    """
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    refit_every = require_int("refit_every", refit_every, 1)
    if window == "rolling":
        window_days = require_int("window_days (window='rolling')", window_days, 2)
    elif window_days is not None:
        raise ValueError("window_days applies to window='rolling' only")

    prices = read_prices(data, columns=columns, date_column=date_column)
    first, last = to_timestamp(start, "start"), to_timestamp(end, "end")
    index = prices.index
    dates = index[(index >= first) & (index <= last)]
    if not len(dates):
        raise DataError(
            f"no rows in the evaluation period {first:%Y-%m-%d} .. {last:%Y-%m-%d}; the data "
            f"cover {index[0]:%Y-%m-%d} .. {index[-1]:%Y-%m-%d}"
        )
    begin = to_timestamp(train_start, "train_start")

    plan = []
    for pos in range(0, len(dates), refit_every):
        refit_date = dates[pos]
        period_end = dates[min(pos + refit_every, len(dates)) - 1]
        history = index[index < refit_date]
        if not len(history):
            n_train, window_start = 0, None
        elif window == "expanding":
            window_start = begin if begin is not None else history[0]
            n_train = int((history >= window_start).sum())
        else:
            n_train = min(window_days, len(history))
            window_start = history[-n_train]
        if n_train < 2:
            raise DataError(
                f"no training rows before the refit date {refit_date:%Y-%m-%d}; start the "
                "evaluation later or give more history"
            )
        plan.append((refit_date, period_end, window_start))

    if workers is None and scheduler is None:
        done = [_refit_period(prices, *item, fit_fn=fit, fit_kwargs=fit_kwargs) for item in plan]
    else:
        done = _refit_on_cluster(prices, plan, workers, scheduler, threads_per_task, fit_kwargs)
    pieces = [rows for rows, _ in done]
    refits = [info for _, info in done]
    out = pd.concat(pieces, ignore_index=True)[[c.name for c in FEED_SCHEMA]]
    out.attrs["refits"] = refits
    return out


def _refit_period(prices, refit_date, period_end, window_start, *, fit_fn, fit_kwargs):
    """Fit the rows before ``refit_date`` from ``window_start``, then filter ``refit_date ..
    period_end``: ``(feed rows of the period, the refit's record)``."""
    index = prices.index
    history = prices.loc[index < refit_date]
    result = fit_fn(history, start=window_start, end=history.index[-1], **fit_kwargs)
    ahead = prices.loc[(index >= refit_date) & (index <= period_end)]
    rows = feed(update(result, ahead))
    rows = rows[rows["date"] >= refit_date]
    diag = check_fit(result, warn=False)
    return rows, {
        "refit_date": str(refit_date.date()),
        "train_start": str(result.attrs["start"]),
        "train_end": str(result.attrs["end"]),
        "n_train_days": int(result.attrs["n_days"]),
        "period_end": str(period_end.date()),
        "max_rhat": diag.max_rhat,
        "divergences": diag.divergences,
        "ok": diag.ok,
    }


def _refit_task(prices, refit_date, period_end, window_start, fit_kwargs):
    """:func:`_refit_period` on a Dask worker, with the warnings it raised."""
    return capture_warnings(_refit_period, prices, refit_date, period_end, window_start,
                            fit_fn=fit, fit_kwargs=fit_kwargs)


def _refit_on_cluster(prices, plan, workers, scheduler, threads_per_task, fit_kwargs):
    """The refits of ``plan`` on Dask workers, in the plan's order; the first failure raised."""
    kwargs = {"cores": threads_per_task, **fit_kwargs}
    done: dict[str, tuple] = {}
    with open_client(workers, scheduler, threads_per_task=threads_per_task) as client:
        shared = client.scatter(prices)
        calls = {f"{r:%Y-%m-%d}": ((shared, r, e, s, kwargs), {}) for r, e, s in plan}
        for outcome in run_tasks(client, _refit_task, calls, prefix="refit"):
            if outcome.error is not None:
                raise outcome.exception
            done[outcome.name] = outcome.value
    out = []
    for name in calls:
        value, caught = done[name]
        replay_warnings(caught)
        out.append(value)
    return out
