"""The dates of a price file (:mod:`stressflow.data.dates`): duplicates, order, parsing, time
zones, times of day, numbers, levels of columns and non-daily rows, on a slice of the bundled
S&P 500. Split from ``test_data_bad_input.py``."""

from __future__ import annotations

import pandas as pd
import pytest
from sp_slice import DAY, START, quiet, row, sp_1999_2000
from stressflow.data import DataError, DataWarning, prepare, read_prices

pytestmark = pytest.mark.filterwarnings("ignore::stressflow.data.DataWarning")


@pytest.fixture
def sp() -> pd.DataFrame:
    return sp_1999_2000()


def test_duplicate_date(sp):
    sp.loc[row(sp) + 1, "date"] = pd.Timestamp(DAY)
    with pytest.raises(DataError, match=rf"duplicate date {DAY}"):
        read_prices(sp)


def test_unsorted_dates_name_first_out_of_order(sp):
    i = row(sp)
    swapped = sp.iloc[[*range(i), i + 1, i, *range(i + 2, len(sp))]]
    with pytest.raises(DataError, match=rf"not sorted: {DAY} .*comes after.*sort"):
        read_prices(swapped)


def test_newest_first_file_is_put_in_date_order(sp, tmp_path):
    """A file written newest first throughout (as some vendors do) reads as the sorted one; a
    reversed file with one pair swapped is still unsorted."""
    sp.iloc[::-1].to_csv(tmp_path / "desc.csv", index=False)
    pd.testing.assert_frame_equal(read_prices(tmp_path / "desc.csv"), read_prices(sp),
                                  check_freq=False)
    i = row(sp)
    desc = sp.iloc[[*range(i), i + 1, i, *range(i + 2, len(sp))]].iloc[::-1]
    with pytest.raises(DataError, match="not sorted"):
        read_prices(desc)


def test_unparseable_date(sp):
    i = row(sp)
    sp["date"] = sp["date"].dt.strftime("%Y-%m-%d").astype(object)
    sp.loc[i, "date"] = "2000-13-45"
    with pytest.raises(DataError, match=r"unparseable date '2000-13-45' in row"):
        read_prices(sp)


def test_empty_date(sp):
    sp["date"] = sp["date"].dt.strftime("%Y-%m-%d").astype(object)
    sp.loc[3, "date"] = None
    with pytest.raises(DataError, match=r"has an empty date in row 3"):
        read_prices(sp)


def test_utc_offsets_that_change_with_dst_keep_the_local_date(sp, tmp_path):
    """A CSV written from a tz-aware index (offsets -05:00 and -04:00 across DST) reads as the
    local dates, the same frame as without a zone (it used to raise pandas' tz error)."""
    path = tmp_path / "tz.csv"
    sp.assign(date=sp["date"].dt.tz_localize("US/Eastern")).to_csv(path, index=False)
    assert {"-05:00", "-04:00"} <= {text[-6:] for text in pd.read_csv(path)["date"]}
    pd.testing.assert_frame_equal(read_prices(path), read_prices(sp))
    tokyo = sp.set_index(sp["date"].dt.tz_localize("Asia/Tokyo")).drop(columns="date")
    pd.testing.assert_frame_equal(read_prices(tokyo), read_prices(sp))  # not shifted to UTC


def test_a_time_of_day_is_dropped_counted_and_the_bond_series_still_joins(sp):
    """Daily bars stamped 16:00 are keyed by their date (a counted DataWarning), so series
    joined on the date (the bond yield of bond_vol_surprise) still join; before, that
    observable was silently missing on every day."""
    timed = sp.assign(date=sp["date"] + pd.Timedelta(hours=16))
    with pytest.warns(DataWarning, match=r"504 date\(s\) in date column 'date' carry a time of "
                      r"day \(first: 1999-01-04 16:00:00\).*the time was dropped"):
        prep = prepare(timed, observables=("bond_vol_surprise",), start=START)
    plain = quiet(sp, observables=("bond_vol_surprise",), start=START)
    pd.testing.assert_frame_equal(prep.features, plain.features)
    assert prep.features["bond_vol_surprise"].notna().sum() > 200


def test_intraday_rows_on_one_date_are_an_error(sp):
    i = row(sp)
    two = pd.concat([sp.iloc[:i + 1], sp.iloc[[i]], sp.iloc[i + 1:]], ignore_index=True)
    two.loc[i + 1, "date"] = pd.Timestamp(DAY) + pd.Timedelta(hours=12)
    with pytest.raises(DataError, match=rf"several rows on {DAY} at different times of day "
                       r"\(1 such row\(s\)\).*resample intraday data"):
        read_prices(two)


def test_weekly_bars_are_refused_and_a_daily_series_with_holes_is_not(sp):
    """Weekly rows used to be read as days (573 'gaps' warned, every window and duration in
    weeks); a daily series that lacks every other day is still daily."""
    weekly = sp.set_index("date").resample("W-FRI").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "adj_close": "last",
         "volume": "sum"}).dropna()
    with pytest.raises(DataError, match=r"the rows are not daily bars: consecutive dates are a "
                       r"median 5 business days apart \(first 1999-01-08, 1999-01-15\)"):
        read_prices(weekly)
    holes = sp.iloc[::2]
    assert len(read_prices(holes)) == len(holes)
    assert len(read_prices(weekly.iloc[:19])) == 19  # too few rows to judge (an update's rows)


def test_empty_file_and_wrong_separator_get_clear_errors(sp, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv' is empty: no header and no rows"):
        read_prices(empty)
    semi = tmp_path / "semi.csv"
    sp.to_csv(semi, index=False, sep=";", decimal=",")
    with pytest.raises(DataError, match=r"separate its columns with ';': read it with "
                       r"pandas.read_csv\(path, sep=';'\)"):
        read_prices(semi)
    two = sp.rename(columns={"date": "Date"}).assign(DATE=sp["date"])
    with pytest.raises(DataError, match=r"several columns could be it \('Date', 'DATE'\): pass "
                       "date_column="):
        read_prices(two)


def test_dates_as_numbers_yyyymmdd_read_other_numbers_refused(sp):
    """YYYYMMDD integers are dates; other numbers (here seconds since 1970) are refused, where
    pandas alone would read them as nanoseconds after 1970-01-01."""
    as_int = sp.assign(date=sp["date"].dt.strftime("%Y%m%d").astype(int))
    pd.testing.assert_frame_equal(read_prices(as_int), read_prices(sp))
    seconds = sp.assign(date=(sp["date"] - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s"))
    with pytest.raises(DataError, match=r"date column 'date' holds numbers \(915408000 in the "
                       r"first row\), not dates.*unit='s'.*origin='1899-12-30'"):
        read_prices(seconds)
    nanoseconds = sp.assign(date=sp["date"].astype("datetime64[ns]").astype("int64"))
    from_ns = read_prices(nanoseconds)
    pd.testing.assert_frame_equal(from_ns.set_axis(from_ns.index.as_unit("us")), read_prices(sp))
    period = sp.set_index(sp["date"].dt.to_period("D")).drop(columns="date")
    pd.testing.assert_frame_equal(read_prices(period), read_prices(sp))


def test_a_one_ticker_download_with_two_column_levels_reads_and_two_tickers_are_refused(sp):
    """A download of tickers x fields (columns with two levels) reads for one ticker; with two,
    the error says how to pick one."""
    one = pd.concat({"^GSPC": sp.set_index("date")}, axis=1).swaplevel(axis=1)
    pd.testing.assert_frame_equal(read_prices(one), read_prices(sp))
    two = pd.concat({"^GSPC": sp.set_index("date"), "SPY": sp.set_index("date")}, axis=1)
    with pytest.raises(DataError, match=r"the columns have 2 levels \(level 0: '\^GSPC', 'SPY'; "
                       r"level 1: 'open'.*frame.xs\('\^GSPC', axis=1, level=0\)"):
        read_prices(two)
    pd.testing.assert_frame_equal(read_prices(two.xs("^GSPC", axis=1, level=0)), read_prices(sp))
    low = pd.concat({"LOW": sp.set_index("date")}, axis=1)  # a ticker named like a field
    pd.testing.assert_frame_equal(read_prices(low), read_prices(sp))
