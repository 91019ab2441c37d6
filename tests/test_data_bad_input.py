"""Every kind of bad input, built by editing a small slice of real S&P 500 data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sp_slice import DAY, START, quiet, row, sp_1999_2000
from stressflow.data import DataError, DataWarning, prepare, read_prices
from stressflow.models.dims import FEATURES

SPREAD, VOLATILITY, VOLUME, IMPACT = FEATURES
# DataWarnings are asserted with pytest.warns where they matter; elsewhere (e.g. the ever-present
# zero Abdi-Ranaldo spread estimates) they are expected and silenced.
pytestmark = pytest.mark.filterwarnings("ignore::stressflow.data.DataWarning")


@pytest.fixture
def sp() -> pd.DataFrame:
    return sp_1999_2000()


# --------------------------------------------------------------------------- columns


@pytest.mark.parametrize("column", ["high", "low", "close", "volume"])
def test_missing_required_column(sp, column):
    with pytest.raises(
        DataError,
        match=rf"missing required column\(s\) \['{column}'\].*"
        r"available columns: 'open'",
    ):
        prepare(sp.drop(columns=[column]))


def test_open_is_not_required(sp):
    prep = quiet(sp.drop(columns=["open", "adj_close"]), start=START)
    assert list(prep.features.columns) == list(FEATURES)


def test_vix_without_volume_says_volume_is_required():
    with pytest.raises(DataError, match=r"\['volume'\].*volume is required"):
        prepare("vix")
    with pytest.raises(DataError, match="volume is required"):
        read_prices("vix")


def test_names_in_another_case_or_spacing_are_matched_once(sp):
    """A Yahoo download's ``Date, Open, High, Low, Close, Adj Close, Volume`` read as the
    standard names (the caller's frame untouched); several candidates for one name are an
    error naming them, and stressflow's own name wins over a look-alike."""
    yahoo = sp.rename(columns={
        "date": "Date", "open": "Open", "high": " HIGH ", "low": "Low", "close": "Close",
        "adj_close": "Adj Close", "volume": "Volume"})
    kept = yahoo.copy()
    pd.testing.assert_frame_equal(read_prices(yahoo), read_prices(sp))
    pd.testing.assert_frame_equal(yahoo, kept)
    both = sp.assign(CLOSE=sp["close"] * 2).rename(columns={"close": "Close"})
    with pytest.raises(DataError, match=r"several columns could be 'close' \('Close', 'CLOSE'\)"
                       r": pass columns=\{'Close': 'close'\}"):
        read_prices(both)
    own = read_prices(sp.assign(Close=sp["close"] * 2))
    assert_array_equal(own["close"], sp["close"])
    assert_array_equal(own["Close"], 2 * sp["close"])


def test_mapping_names_absent_column(sp):
    with pytest.raises(DataError, match=r"columns= maps 'Vol'.*no such column.*available"):
        read_prices(sp, columns={"Vol": "volume"})


def test_mapping_creates_duplicate_column(sp):
    with pytest.raises(DataError, match=r"'close'.*more than once"):
        read_prices(sp, columns={"adj_close": "close"})


def test_spread_and_extra_columns_absent(sp):
    with pytest.raises(DataError, match=r"\['oas'\].*not found.*available"):
        prepare(sp, spread_column="oas")
    with pytest.raises(DataError, match=r"\['vix'\].*not found"):
        prepare(sp, extra_columns=["vix"])


def test_extra_column_clashing_with_feature(sp):
    with pytest.raises(DataError, match=r"\['volume'\] clash"):
        prepare(sp, extra_columns=["volume"])


def test_no_date_column_and_no_datetime_index(sp):
    with pytest.raises(DataError, match=r"no date column 'Datum'.*available columns"):
        read_prices(sp, date_column="Datum")


# --------------------------------------------------------------------------- values


def test_thousands_separators_are_named(sp):
    sp["volume"] = sp["volume"].map(lambda v: f"{int(v):,}")
    with pytest.raises(DataError, match=r"column 'volume' has a non-numeric value '[\d,]+' on "
                       r"1999-01-04 \(\d+ such row\(s\)\); it looks like a number with thousands "
                       r"separators: read the file with pandas.read_csv\(path, thousands=','\)"):
        read_prices(sp)


def test_non_numeric_value_names_column_and_date(sp, tmp_path):
    sp["close"] = sp["close"].astype(object)
    sp.loc[row(sp), "close"] = "abc"
    with pytest.raises(DataError, match=rf"'close'.*non-numeric value 'abc' on {DAY}"):
        read_prices(sp)
    sp.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=rf"'close'.*'abc' on {DAY}"):
        prepare(tmp_path / "bad.csv")


def test_non_numeric_spread_column(sp):
    sp["oas"] = "3.1"
    sp.loc[row(sp), "oas"] = "n/a"
    with pytest.raises(DataError, match=rf"'oas'.*'n/a' on {DAY}"):
        prepare(sp, spread_column="oas")


def test_infinite_value(sp):
    sp.loc[row(sp), "volume"] = np.inf
    with pytest.raises(DataError, match=rf"'volume'.*infinite.*{DAY}"):
        read_prices(sp)


def test_empty_cells_become_counted_missing_observations(sp, tmp_path):
    i = row(sp)
    sp.loc[i, "close"] = np.nan
    sp.loc[i + 5, "volume"] = np.nan
    sp.to_csv(tmp_path / "holes.csv", index=False)
    with pytest.warns(DataWarning, match=r"empty cells.*close: 1, volume: 1"):
        prep = prepare(tmp_path / "holes.csv", start=START)
    assert prep.report.n_empty_cells == {"close": 1, "volume": 1}
    f, d0, d5 = prep.features, sp.loc[i, "date"], sp.loc[i + 5, "date"]
    assert len(f) == (sp["date"] >= START).sum()  # nothing dropped
    # close missing: range features and impact that day, impact the next day (no return)
    assert f.loc[d0, [SPREAD, VOLATILITY, IMPACT]].isna().all()
    assert np.isfinite(f.loc[d0, VOLUME])
    assert np.isnan(f.loc[sp.loc[i + 1, "date"], IMPACT])
    # volume missing: volume and impact that day only
    assert f.loc[d5, [VOLUME, IMPACT]].isna().all()
    assert np.isfinite(f.loc[d5, VOLATILITY])


def test_blank_strings_are_empty_cells(sp):
    sp["volume"] = sp["volume"].astype(object)
    sp.loc[row(sp), "volume"] = "  "
    assert read_prices(sp)["volume"].isna().sum() == 1


# --------------------------------------------------------------------------- prices, volume


@pytest.mark.parametrize("column", ["close", "high", "low"])
@pytest.mark.parametrize("value", [0.0, -5.0])
def test_non_positive_price(sp, column, value):
    sp.loc[row(sp), column] = value
    if column == "high":
        sp.loc[row(sp), "low"] = value - 1.0  # keep high >= low so positivity fires first
    with pytest.raises(DataError, match=rf"'{column}'.*non-positive.*on {DAY}"):
        read_prices(sp)


def test_high_below_low(sp):
    i = row(sp)
    high, low = sp.loc[i, "high"], sp.loc[i, "low"]
    sp.loc[i, "high"], sp.loc[i, "low"] = low, high
    with pytest.raises(DataError, match=rf"high < low on {DAY}"):
        read_prices(sp)


def test_close_outside_range_is_counted(sp):
    i = row(sp)
    sp.loc[i, "close"] = sp.loc[i, "high"] * 1.01
    sp.loc[i + 3, "close"] = sp.loc[i + 3, "low"] * 0.99
    with pytest.warns(DataWarning, match=rf"2 row\(s\) with close outside \[low, high\].*{DAY}"):
        prep = prepare(sp, start=START)
    assert prep.report.n_range_inconsistent == 2
    bad = list(sp.loc[[i, i + 3], "date"])
    assert list(prep.report.range_inconsistent_dates) == bad
    assert prep.features.loc[bad, [SPREAD, VOLATILITY]].isna().all().all()
    assert prep.features.loc[bad, [VOLUME, IMPACT]].notna().all().all()


def test_flat_row_is_counted(sp):
    i = row(sp)
    sp.loc[i, ["open", "high", "low"]] = sp.loc[i, "close"]
    with pytest.warns(DataWarning, match=rf"1 row\(s\) with high == low.*{DAY}"):
        prep = prepare(sp, start=START)
    assert prep.report.n_flat_range == 1
    assert prep.features.loc[DAY, [SPREAD, VOLATILITY]].isna().all()


def test_zero_volume_rows_all_missing_and_kept(sp):
    i = row(sp)
    sp.loc[[i, i + 10], "volume"] = 0.0
    with pytest.warns(DataWarning, match=rf"2 zero-volume row\(s\).*first: {DAY}"):
        prep = prepare(sp, start=START)
    dates = list(sp.loc[[i, i + 10], "date"])
    assert prep.report.n_zero_volume == 2
    assert list(prep.report.zero_volume_dates) == dates
    assert prep.features.loc[dates].isna().all().all()
    assert prep.features.index.isin(dates).sum() == 2
    assert prep.report.n_missing[VOLUME] == 2


def test_negative_volume(sp):
    sp.loc[row(sp), "volume"] = -1.0
    with pytest.raises(DataError, match=rf"'volume' is negative on {DAY}"):
        read_prices(sp)


def test_spread_column_must_be_positive(sp):
    sp["oas"] = 3.0
    sp.loc[row(sp), "oas"] = 0.0
    with pytest.raises(DataError, match=rf"'oas' must be > 0.*on {DAY}"):
        prepare(sp, spread_column="oas")


def test_logged_extra_column_turning_non_positive_under_transform(sp):
    sp["level"] = np.linspace(1.0, 2.0, len(sp))
    tr = quiet(sp, start=START, extra_columns=["level"]).transform
    assert tr.log_columns == ("level",)
    sp.loc[row(sp), "level"] = -0.5
    with pytest.raises(DataError, match=rf"'level' was log-transformed.*on {DAY}"):
        prepare(sp, start=START, transform=tr)


def test_constant_observable(sp):
    sp["volume"] = 1e9
    with pytest.raises(DataError, match=r"'volume' is constant"):
        quiet(sp, start=START)


def test_all_missing_observable(sp):
    sp["oas"] = np.nan
    with pytest.raises(DataError, match=r"'spread' has 0 non-missing"):
        quiet(sp, start=START, spread_column="oas")


# --------------------------------------------------------------------------- time axis


def test_gap_is_warned(sp):
    holed = sp[(sp["date"] < "2000-05-01") | (sp["date"] > "2000-05-12")]
    with pytest.warns(DataWarning, match=r"1 gap\(s\).*2000-04-28 -> 2000-05-15"):
        prep = prepare(holed, start=START)
    assert prep.report.n_gaps == 1


def test_normal_holidays_are_not_gaps(sp):
    prep = quiet(sp)
    assert prep.report.n_gaps == 0


def test_warmup_is_counted_not_an_error(sp):
    with pytest.warns(DataWarning, match=r"85 row\(s\).*warm-up"):
        prep = prepare(sp)
    assert prep.report.n_warmup == 85
    assert prep.features[IMPACT].iloc[:85].isna().all()


def test_too_few_rows(sp):
    with pytest.raises(DataError, match=r"^only 22 row\(s\) in the window 2000-03-01 \.\. "
                       r"2000-03-30 \(min_rows=60\)"):
        prepare(sp, start="2000-03-01", end="2000-03-30")
    with pytest.raises(DataError, match=r"^only 22 row\(s\) in the window 2000-03-01 \.\. "):
        prepare(sp, start=pd.Timestamp("2000-03-01"), end="2000-03-30")  # no 00:00:00


def test_start_after_end(sp):
    with pytest.raises(
        DataError,
        match=r"start 2000-06-01 is after end 2000-01-01.*"
        r"1999-01-04 \.\. 2000-12-29",
    ):
        prepare(sp, start="2000-06-01", end="2000-01-01")


@pytest.mark.parametrize(
    ("start", "end"), [("2005-01-01", None), (None, "1990-01-01"), ("2001-01-01", "2001-12-31")]
)
def test_window_outside_data(sp, start, end):
    with pytest.raises(DataError, match=r"1999-01-04 \.\. 2000-12-29"):
        prepare(sp, start=start, end=end)


def test_bad_window_argument(sp):
    with pytest.raises(DataError, match="not a date"):
        prepare(sp, start="next tuesday")
    # a year as a number: pandas reads 2000 as 2,000 ns after 1970, i.e. no window at all
    for value, text in ((2000, "2000"), (2000.0, "2000.0"), (np.int64(2000), "2000")):
        with pytest.raises(DataError, match=rf"^start={text} is not a date; give one as text"):
            prepare(sp, start=value)
    from stressflow.data.panel import prepare_panel
    from stressflow.inference.apps.backtest import backtest
    from stressflow.inference.apps.many import fit_windows, rolling_windows

    for call, name in ((lambda: backtest(sp, start=2000, end="2000-06-30", refit_every=20),
                        "start"),
                       (lambda: rolling_windows(sp, window_days=100, step=20, end=2000), "end"),
                       (lambda: backtest(sp, start="2000-06-01", end="2000-06-30", refit_every=20,
                                         train_start=2000), "train_start"),
                       (lambda: prepare_panel("us_markets", end=2000), "end"),
                       (lambda: fit_windows(sp, [(2000, "2000-06-30")], out_dir="."),
                        "window \\(2000, '2000-06-30'\\): start")):
        with pytest.raises(DataError, match=rf"^{name}=2000 is not a date"):
            call()


# --------------------------------------------------------------------------- sources


def test_unknown_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an existing file nor a bundled"):
        read_prices("sp501")
    (tmp_path / "p.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        read_prices(tmp_path / "p.xlsx")
    with pytest.raises(TypeError, match="source must be"):
        read_prices(42)
