"""Issue 11's bad inputs, each on a modified copy of real bundled data: a clear error or a
counted, documented treatment (absurd magnitudes, bad ticks, header-only files, ...)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sp_slice import quiet, row
from stressflow.data import DataError, DataWarning, load_dataset, prepare, read_prices
from stressflow.data.checks import BAD_TICK_SD, find_bad_ticks, find_splits
from stressflow.inference import fit
from stressflow.models.dims import FEATURES
from stressflow.models.messages import shown
from stressflow.models.spec import ModelSpec

SPREAD, VOLATILITY, VOLUME, IMPACT = FEATURES
DAY = "2002-10-22"
PRICES = ["open", "high", "low", "close", "adj_close"]
# the 9/11 closure is a documented gap in every window used here
pytestmark = pytest.mark.filterwarnings("ignore:1 gap:stressflow.data.DataWarning")


@pytest.fixture(scope="module")
def sp_csv(tmp_path_factory) -> pd.DataFrame:
    """The bundled S&P 500 1999-2004 as a user's CSV would read (a ``date`` column)."""
    return load_dataset("sp500").loc["1999":"2004"].reset_index()


def write(frame: pd.DataFrame, tmp_path, name="prices.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_high_below_low_is_an_error_naming_the_date(sp_csv, tmp_path):
    bad = sp_csv.copy()
    i = row(bad, DAY)
    bad.loc[i, "high"] = bad.loc[i, "low"] * 0.99
    with pytest.raises(DataError, match=rf"high < low on {DAY} \(1 such row"):
        read_prices(write(bad, tmp_path))
    with pytest.raises(DataError, match=rf"high < low on {DAY}"):
        prepare(write(bad, tmp_path))


def test_header_only_csv_is_an_error(sp_csv, tmp_path):
    path = write(sp_csv.iloc[:0], tmp_path)
    assert path.read_text().strip() == "date,open,high,low,close,adj_close,volume"
    with pytest.raises(DataError, match=r"no rows \(only a header with the columns 'open'"):
        read_prices(path)
    with pytest.raises(DataError, match="no rows"):
        prepare(path)


@pytest.mark.parametrize(("column", "value"), [("close", 1e300), ("high", 1e300),
                                               ("low", 1e-300), ("volume", 1e300)])
def test_absurd_magnitude_is_an_error_naming_column_and_date(sp_csv, tmp_path, column, value):
    bad = sp_csv.copy()
    bad.loc[row(bad, DAY), column] = value
    with pytest.raises(DataError, match=rf"column '{column}' has an absurd value .* on {DAY}"):
        prepare(write(bad, tmp_path))


def _tick(frame: pd.DataFrame, factor: float, columns=("open", "high", "low", "close")):
    bad = frame.copy()
    bad.loc[row(bad, DAY), list(columns)] *= factor
    return bad


@pytest.mark.parametrize("factor", [1000.0, 1e-3, 10.0, 2.0])
def test_one_day_bad_tick_is_flagged_counted_warned_and_masked(sp_csv, tmp_path, factor):
    path = write(_tick(sp_csv, factor), tmp_path)
    with pytest.warns(DataWarning, match=rf"1 suspected bad tick.*first: {DAY}"):
        prep = prepare(path, start="2000-01-01")
    assert prep.report.n_bad_ticks == 1
    assert [d.strftime("%Y-%m-%d") for d in prep.report.bad_tick_dates] == [DAY]
    assert "suspected bad ticks (mask): 1" in str(prep.report)
    clean = quiet(write(sp_csv, tmp_path, "clean.csv"), start="2000-01-01")
    assert clean.report.n_bad_ticks == 0
    # masked: that day's spread, volatility, impact and the next day's impact are missing
    day = pd.Timestamp(DAY)
    nxt = prep.features.index[prep.features.index.get_loc(day) + 1]
    assert prep.features.loc[day, [SPREAD, VOLATILITY, IMPACT]].isna().all()
    assert np.isnan(prep.features.loc[nxt, IMPACT])
    assert np.isfinite(prep.features.loc[day, VOLUME])
    # the days after are as without the tick except through the trailing windows' one value
    later = prep.raw.loc["2002-12-01":]
    base = clean.raw.loc["2002-12-01":]
    assert np.nanmax(np.abs(later[VOLATILITY] - base[VOLATILITY])) == 0.0
    assert np.nanmedian(np.abs(later[IMPACT] - base[IMPACT])) < 1e-12


def test_bad_tick_keep_and_raise(sp_csv, tmp_path):
    path = write(_tick(sp_csv, 1000.0), tmp_path)
    with pytest.warns(DataWarning, match=r"kept as given \(bad_ticks='keep'\)"):
        kept = prepare(path, start="2000-01-01", bad_ticks="keep")
    assert kept.report.n_bad_ticks == 1 and kept.report.bad_ticks == "keep"
    assert np.isfinite(kept.raw.loc[DAY, IMPACT])
    with pytest.raises(DataError, match=rf"suspected bad tick\(s\) on {DAY}"):
        prepare(path, bad_ticks="raise")
    with pytest.raises(ValueError, match="bad_ticks must be one of"):
        prepare(path, bad_ticks="drop")


def test_a_wrong_high_alone_is_a_bad_tick(sp_csv, tmp_path):
    path = write(_tick(sp_csv, 10.0, columns=("high",)), tmp_path)
    with pytest.warns(DataWarning, match="1 suspected bad tick"):
        prep = prepare(path, start="2000-01-01")
    assert prep.report.n_bad_ticks == 1
    assert np.isnan(prep.features.loc[DAY, VOLATILITY])


@pytest.mark.parametrize("name", ["sp500", "spy", "vw", "gme"])
def test_no_bad_tick_in_the_bundled_files(name):
    """The documented false-positive rate: zero flagged days in each bundled price file."""
    flags = find_bad_ticks(read_prices(name))
    assert int(flags.sum()) == 0


def test_vw_squeeze_is_not_a_bad_tick():
    """VW 2008-10-27 (+90%, a real squeeze) is far beyond 20 robust sd but does not reverse."""
    prices = read_prices("vw")
    close = prices.loc["2008-10-24":"2008-10-28", "close"].to_numpy()
    assert np.log(close[1] / close[0]) > 0.8  # the squeeze day is in the data as described
    window = prices.loc["2008-06-01":"2008-12-31"]
    assert not find_bad_ticks(window).any()
    assert BAD_TICK_SD == 20.0


def test_bad_tick_rule_is_causal_up_to_one_day(sp_csv):
    """The flag of day t depends on rows up to t + 1 only."""
    bad = _tick(sp_csv, 1000.0).set_index("date")
    i = bad.index.get_loc(pd.Timestamp(DAY))
    assert find_bad_ticks(bad.iloc[: i + 2]).iloc[i]
    assert not find_bad_ticks(bad.iloc[: i + 1]).any()  # the last row cannot be judged


def test_zero_volume_everywhere_names_volume(sp_csv, tmp_path):
    bad = sp_csv.copy()
    bad["volume"] = 0.0
    with pytest.raises(DataError, match=r"column 'volume' is 0 \(or empty\) on every row"):
        prepare(write(bad, tmp_path))


def test_constant_price_names_high_and_low(sp_csv, tmp_path):
    bad = sp_csv.copy()
    bad[PRICES] = 100.0
    with pytest.raises(DataError, match=r"'high' and 'low' are equal on every trading row"):
        prepare(write(bad, tmp_path))
    bad = sp_csv.copy()
    bad["close"] = 100.0
    bad["high"], bad["low"] = 101.0, 99.0
    with pytest.raises(DataError, match=r"column 'close' is constant \(100\)"):
        prepare(write(bad, tmp_path))


def test_messages_show_plain_numbers_not_numpy_reprs(sp_csv, tmp_path):
    bad = sp_csv.copy()
    bad.loc[row(bad, DAY), "low"] = -5.0
    with pytest.raises(DataError) as info:
        prepare(write(bad, tmp_path))
    assert "non-positive price -5 on 2002-10-22" in str(info.value)
    bad = sp_csv.copy()
    bad["oas"] = 1.0
    bad.loc[row(bad, DAY), "oas"] = 0.0
    with pytest.raises(DataError) as info:
        prepare(write(bad, tmp_path), spread_column="oas")
    assert "is 0 on 2002-10-22" in str(info.value)
    for message in (str(info.value),):
        assert "np.float64" not in message and "np.int64" not in message


def test_shown_quotes_the_python_value_of_numpy_scalars():
    assert shown(np.int64(5)) == "5"
    assert shown(np.float64(0.25)) == "0.25"
    assert shown(np.str_("a")) == "'a'"
    assert shown("5") == "'5'"  # a string stays distinguishable from a number
    assert shown(None) == "None"
    assert shown(np.True_) == "True"
    assert shown(np.float32(-0.1)) == "-0.1"
    assert shown(np.longdouble(1.5)) == "1.5"
    assert shown(np.datetime64("NaT", "ns")) == "NaT"  # not None, which means "not given"
    assert shown(np.datetime64("2020-01-01")) == "2020-01-01"
    assert shown([1, 2]) == "[1, 2]"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda path: prepare(path, spread_window=np.int64(0)),
         "spread_window must be an integer >= 1, got 0"),
        (lambda path: prepare(path, min_rows=np.int64(1)),
         "min_rows must be an integer >= 2, got 1"),
        (lambda path: fit(path, draws=np.int64(0)), "draws must be an integer >= 1, got 0"),
        (lambda path: ModelSpec(stickiness=np.float64(-1.5)),
         "stickiness must be a finite number >= 0, got -1.5"),
    ],
    ids=["window", "min_rows", "fit_draws", "spec_stickiness"],
)
def test_numpy_scalar_options_are_quoted_as_plain_numbers(sp_csv, tmp_path, call, expected):
    """Options given as NumPy scalars (e.g. read from an array) are checked like Python ones,
    and the message quotes the value as the user would write it, not ``np.int64(0)``."""
    with pytest.raises(ValueError) as info:
        call(write(sp_csv, tmp_path))
    assert str(info.value).startswith(expected)
    assert "np." not in str(info.value)


def _unadjusted(prices: pd.DataFrame, splits) -> pd.DataFrame:
    """``prices`` as a vendor that does not adjust for splits would give them: before each
    ``(date, ratio)`` the prices times ``ratio`` and the volume divided by it."""
    out = prices.copy()
    for date, ratio in splits:
        before = out.index < pd.Timestamp(date)
        out.loc[before, ["open", "high", "low", "close", "adj_close"]] *= ratio
        out.loc[before, "volume"] /= ratio
    return out


def test_unadjusted_splits_are_found_warned_and_reported():
    """A 4:1 split and a 1:10 reverse split left unadjusted in GME's prices are each flagged
    with its ratio, warned about and counted; the features are those of the data as given;
    the bundled (adjusted) files have none."""
    gme = read_prices("gme")
    raw = _unadjusted(gme, [("2012-06-01", 4.0), ("2015-03-02", 0.1)])
    found = find_splits(raw).dropna()
    assert list(found.index) == [pd.Timestamp("2012-06-01"), pd.Timestamp("2015-03-02")]
    assert_allclose(found.to_numpy(), [4.0, 0.1], rtol=0.05)
    with pytest.warns(DataWarning, match=r"2 suspected unadjusted share split\(s\).*"
                      r"2012-06-01 \(4\.00 to 1\), 2015-03-02 \(0\.10 to 1\)"):
        prep = prepare(raw, start="2011-01-01", end="2016-12-31")
    assert prep.report.n_suspected_splits == 2
    assert prep.report.to_dict()["suspected_split_dates"] == ["2012-06-01", "2015-03-02"]
    assert "suspected unadjusted splits (used as given): 2" in str(prep.report)
    # outside the window: not reported
    assert quiet(raw, start="2013-01-01", end="2014-12-31").report.n_suspected_splits == 0
    for name in ("sp500", "spy", "vw", "gme"):
        assert find_splits(read_prices(name)).isna().all(), name


@pytest.mark.parametrize(("date", "ratio"), [("2006-09-01", 2.0), ("2013-05-01", 1.5),
                                             ("2010-11-01", 0.5)])
def test_common_split_ratios_are_found(date, ratio):
    found = find_splits(_unadjusted(read_prices("gme"), [(date, ratio)])).dropna()
    assert list(found.index) == [pd.Timestamp(date)]
    assert found.iloc[0] == pytest.approx(ratio, rel=0.06)


def test_a_split_on_the_last_row_is_found_and_a_gap_down_crash_is_not():
    """A split on the last row (a daily ``update``) is found on the price criteria; a gap down
    to a third that then trades flat, with share volume up by half (not threefold), is not."""
    gme = read_prices("gme")
    last = _unadjusted(gme.loc[:"2012-06-01"], [("2012-06-01", 4.0)])
    assert list(find_splits(last).dropna().index) == [pd.Timestamp("2012-06-01")]
    crash = gme.copy()
    after = crash.index >= pd.Timestamp("2010-06-01")
    crash.loc[after, ["open", "high", "low", "close", "adj_close"]] /= 3.0
    crash.loc[after, "volume"] *= 1.5
    assert find_splits(crash).isna().all()
    assert list(find_splits(_unadjusted(gme, [("2010-06-01", 3.0)])).dropna().index) == [
        pd.Timestamp("2010-06-01")]
