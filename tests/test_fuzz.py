"""Property-based test of the data pipeline (hypothesis): random OHLCV frames with injected
NaN, inf, zeros, negative and extreme values, text, duplicated or out-of-order dates and swapped
columns. Every call of ``prepare`` either raises ``DataError`` or returns observables that are
finite wherever they are not missing, with the missing ones counted in the report; the input
frame is never modified and nothing else (no other exception, no RuntimeWarning) escapes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from stressflow.data import DataError, DataWarning, prepare  # noqa: E402
from stressflow.models.dims import FEATURES  # noqa: E402

COLUMNS = ["open", "high", "low", "close", "volume"]
VALUES = [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e300, 1e-300, 1e12, "n/a", ""]
KINDS = ["value", "value", "value", "duplicate_date", "swap_rows", "swap_columns",
         "constant_column", "tick"]


def _frame(seed: int, n: int) -> pd.DataFrame:
    """A plausible daily OHLCV frame: a random walk with a high-low range around the close."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
    spread = np.exp(0.01 * np.abs(rng.standard_normal((n, 2))))
    high, low = close * spread[:, 0], close / spread[:, 1]
    frame = pd.DataFrame({
        "date": pd.bdate_range("2001-01-01", periods=n),
        "open": close * np.exp(0.002 * rng.standard_normal(n)),
        "high": high, "low": low, "close": close,
        "volume": np.round(1e6 * np.exp(0.3 * rng.standard_normal(n))),
    })
    return frame


@st.composite
def corrupted_frames(draw):
    n = draw(st.integers(8, 80))
    frame = _frame(draw(st.integers(0, 2**31 - 1)), n)
    frame = frame.astype({c: object for c in COLUMNS})
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(KINDS))
        row = draw(st.integers(0, n - 1))
        column = draw(st.sampled_from(COLUMNS))
        if kind == "value":
            frame[column] = frame[column].astype(object)
            frame.loc[row, column] = draw(st.sampled_from(VALUES))
        elif kind == "duplicate_date":
            frame.loc[row, "date"] = frame.loc[draw(st.integers(0, n - 1)), "date"]
        elif kind == "swap_rows":
            other = draw(st.integers(0, n - 1))
            frame.loc[[row, other], "date"] = frame.loc[[other, row], "date"].to_numpy()
        elif kind == "swap_columns":
            a, b = draw(st.sampled_from([("high", "low"), ("close", "volume"),
                                         ("high", "close"), ("low", "volume")]))
            frame[[a, b]] = frame[[b, a]].to_numpy()
        elif kind == "constant_column":
            frame[column] = frame.loc[row, column]
        else:  # a one-day tick by a factor
            factor = draw(st.sampled_from([1e3, 1e-3, 10.0, 0.5]))
            for c in ("open", "high", "low", "close"):
                value = frame.loc[row, c]
                if isinstance(value, float):
                    frame.loc[row, c] = value * factor
    return frame


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame=corrupted_frames(), bad_ticks=st.sampled_from(["mask", "keep"]))
def test_prepare_returns_counted_finite_observables_or_raises_data_error(frame, bad_ticks):
    before = frame.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            prep = prepare(frame, volume_window=6, impact_window=9, spread_window=3,
                           min_rows=5, bad_ticks=bad_ticks)
        except DataError as exc:
            event("DataError")
            assert str(exc) and "np.float64" not in str(exc)
            pd.testing.assert_frame_equal(frame, before)
            return
    event("observables returned")
    counts = prep.report.to_dict()
    event(f"treated: {sorted(k for k, v in counts.items() if k.startswith('n_') and v)}")
    pd.testing.assert_frame_equal(frame, before)
    features = prep.features.to_numpy(dtype=np.float64)
    present = ~np.isnan(features)
    assert np.isfinite(features[present]).all()
    assert list(prep.features.columns) == list(FEATURES)
    assert len(prep.features) == prep.report.n_rows
    assert prep.report.n_missing == {c: int(prep.features[c].isna().sum()) for c in FEATURES}
    raw = prep.raw.to_numpy(dtype=np.float64)
    assert np.array_equal(np.isnan(raw), ~present)
    # each feature that is present has its raw inputs: volume > 0 that day, prices finite
    prices = prep.prices
    traded = (prices["volume"] > 0).to_numpy()
    assert not present[~traded].any()
    assert prep.report.n_zero_volume == int((prices["volume"] == 0).sum())
    for c in ("high", "low", "close", "volume"):
        values = prices[c].to_numpy(dtype=np.float64)
        assert not np.isinf(values).any()
