"""The optional ``reversal`` observable (volume-return reversal signature) on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from stressflow.data import DataError, prepare, read_prices
from stressflow.models import dims


def test_reversal_matches_its_formula_on_the_sp500():
    prep = prepare("sp500", start="2007-01-01", end="2009-12-31", observables=("reversal",))
    assert list(prep.features.columns) == [*dims.FEATURES, "reversal"]
    prices = read_prices("sp500")
    traded = prices[prices["volume"] > 0]
    r = np.log(traded["close"]).diff()
    # independent loop: sd of the previous 63 returns (ddof 1), -r_t r_{t-1} / sd^2, clipped
    values = r.to_numpy()
    expect = np.full(len(values), np.nan)
    for t in range(2, len(values)):
        past = values[max(0, t - 63):t]
        past = past[np.isfinite(past)]
        if len(past) >= 21:
            expect[t] = np.clip(-values[t] * values[t - 1] / np.var(past, ddof=1), -20, 20)
    expect = pd.Series(expect, index=traded.index).reindex(prep.raw.index)
    assert_allclose(prep.raw["reversal"].to_numpy(), expect.to_numpy(), rtol=1e-9, atol=1e-12)
    assert np.isfinite(prep.features["reversal"].to_numpy()[5:]).all()


def test_reversal_is_causal_and_named_like_a_builtin():
    full = prepare("sp500", start="2005-01-01", end="2006-12-29", observables="reversal")
    cut = prices_upto = read_prices("sp500")
    prices_upto = cut[cut.index <= "2006-06-30"]
    part = prepare(prices_upto, start="2005-01-01", observables="reversal")
    n = len(part.raw)
    assert_allclose(part.raw["reversal"].to_numpy(), full.raw["reversal"].to_numpy()[:n])
    with pytest.raises(ValueError, match="unknown observables"):
        prepare("sp500", start="2005-01-01", end="2006-12-29", observables=("whipsaw",))
    renamed = read_prices("sp500").rename(columns={"adj_close": "reversal"})
    with pytest.raises(DataError, match="clash with built-in"):
        prepare(renamed, start="2005-01-01", end="2006-12-29", extra_columns=["reversal"])
    # a transform carries the choice: new data get the same observables
    again = prepare("sp500", start="2007-01-01", end="2007-06-29", transform=full.transform)
    assert list(again.features.columns) == [*dims.FEATURES, "reversal"]
