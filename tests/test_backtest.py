"""Rolling out-of-sample evaluation: each output date uses only data available at that date."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from stressflow.data import DataError, prepare, read_prices
from stressflow.inference.apps import backtest as bt
from stressflow.inference.apps.feed import FEED_SCHEMA
from stressflow.models import dims

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.conftest import SIM_P
    from tests.test_feed import fake_fit
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from conftest import SIM_P
    from test_feed import fake_fit

pytestmark = pytest.mark.filterwarnings(
    "ignore::stressflow.data.DataWarning", "ignore::stressflow.inference.FitWarning"
)

STAGES = [f"filtered_{k}" for k in dims.STAGES]


@pytest.fixture(scope="module")
def prices():
    return read_prices("sp500")


class FitSpy:
    """Wraps a fit function and records the last date of the data each call received."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __call__(self, data, *, start, end, **kwargs):
        self.calls.append({"data_last": pd.Timestamp(data.index[-1]),
                           "start": pd.Timestamp(start), "end": pd.Timestamp(end)})
        return self.inner(data, start=start, end=end, **kwargs)


def _known_parameter_fit(data, *, start, end, seed=0, **_):
    """A fit-shaped tree with fixed parameters on the prepared window (no MCMC)."""
    prepared = prepare(data, start=start, end=end)
    mu = np.array([[-1.0, -1.2, -0.2, -0.3], [0.0, -0.3, 0.0, 0.0],
                   [0.7, 0.6, 0.3, 0.3], [1.5, 1.8, 0.8, 0.8]])
    sigma = np.full((4, 4), 0.6)
    return fake_fit(prepared, mu, sigma, SIM_P, n_draws=4, seed=seed)


def _check_out_of_sample(out, spy, dates, refit_every):
    assert list(out.columns) == [c.name for c in FEED_SCHEMA]
    assert out["date"].tolist() == list(dates)
    n_refits = -(-len(dates) // refit_every)
    assert len(out.attrs["refits"]) == len(spy.calls) == n_refits
    for i, call in enumerate(spy.calls):
        refit_date = dates[i * refit_every]
        # the fit saw no row dated on or after its refit date ...
        assert call["data_last"] < refit_date and call["end"] < refit_date
        rows = out.iloc[i * refit_every:(i + 1) * refit_every]
        # ... and each output date t comes from a fit whose data end before t
        assert (rows["fit_data_end"] == call["end"]).all()
    assert (out["fit_data_end"] < out["date"]).all()
    assert not out["in_fit_window"].any()
    assert out[[f"smoothed_{k}" for k in dims.STAGES]].isna().all().all()
    assert_allclose(out[STAGES].sum(axis=1), 1.0, atol=1e-12)


def test_backtest_two_real_refits_use_only_past_data(prices, monkeypatch):
    spy = FitSpy(bt.fit)
    monkeypatch.setattr(bt, "fit", spy)
    dates = prices.loc["2008-01-02":].index[:40]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = bt.backtest("sp500", start=dates[0], end=dates[-1], refit_every=20,
                          train_start="2006-01-01", chains=2, draws=100, tune=150, seed=3)
    _check_out_of_sample(out, spy, dates, 20)
    assert [r["train_start"] for r in out.attrs["refits"]] == ["2006-01-03", "2006-01-03"]
    assert out.attrs["refits"][1]["train_end"] == str(dates[19].date())
    # the refit changes the parameters: the two periods come from different posteriors
    assert out.attrs["refits"][0]["n_train_days"] + 20 == out.attrs["refits"][1]["n_train_days"]


def test_backtest_rolling_window_and_later_data_changes_nothing_earlier(prices, monkeypatch):
    spy = FitSpy(_known_parameter_fit)
    monkeypatch.setattr(bt, "fit", spy)
    dates = prices.loc["2009-01-02":].index[:25]
    out = bt.backtest(prices, start=dates[0], end=dates[-1], refit_every=10, window="rolling",
                      window_days=300)
    _check_out_of_sample(out, spy, dates, 10)
    for i, call in enumerate(spy.calls):
        history = prices.index[prices.index < dates[i * 10]]
        assert call["start"] == history[-300] and call["end"] == history[-1]
    # changing every row after the 12th evaluation date leaves the outputs up to it unchanged
    changed = prices.copy()
    after = changed.index > dates[11]
    changed.loc[after, "volume"] *= 5.0
    changed.loc[after, "high"] *= 1.02
    again = bt.backtest(changed, start=dates[0], end=dates[-1], refit_every=10,
                        window="rolling", window_days=300)
    pd.testing.assert_frame_equal(out.iloc[:12], again.iloc[:12], check_exact=True)
    assert not np.allclose(out["filtered_orderly"].iloc[12:], again["filtered_orderly"].iloc[12:])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"refit_every": 0}, "refit_every"),
        ({"refit_every": 5, "window": "sliding"}, "window must be one of"),
        ({"refit_every": 5, "window": "rolling"}, "window_days"),
        ({"refit_every": 5, "window_days": 100}, "window='rolling' only"),
    ],
)
def test_backtest_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bt.backtest("sp500", start="2008-01-01", end="2008-02-01", **kwargs)


def test_backtest_empty_period_is_a_data_error():
    with pytest.raises(DataError, match="no rows in the evaluation period"):
        bt.backtest("sp500", start="2030-01-01", end="2030-02-01", refit_every=5)
