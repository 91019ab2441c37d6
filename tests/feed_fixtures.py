"""The real-data fit shared by the feed tests (``test_feed.py``, ``test_feed_export.py``,
``test_update_repeated.py``): S&P 500 2006-2008, fitted once per test session, and its update
with the first half of 2009."""

from __future__ import annotations

import warnings

import pytest

FIT_START, FIT_END = "2006-01-01", "2008-12-31"


@pytest.fixture(scope="session")
def prices():
    """The bundled S&P 500 rows, validated (:func:`stressflow.data.read_prices`)."""
    from stressflow.data import read_prices

    return read_prices("sp500")


@pytest.fixture(scope="session")
def real_fit():
    """S&P 500 2006-2008, 2 chains x 100 draws (about 10-15 s). Tests must not modify it."""
    from stressflow.inference import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit("sp500", start=FIT_START, end=FIT_END, chains=2, draws=100, tune=150, seed=1)


@pytest.fixture(scope="session")
def updated(real_fit, prices):
    """The real fit updated with the first half of 2009. Tests must not modify it."""
    from stressflow.inference.apps.feed import update

    return update(real_fit, prices.loc["2009-01-01":"2009-06-30"])
