"""Tests of stressflow.data on the real bundled datasets."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stressflow.data import (
    DataReport,
    DataWarning,
    FeatureTransform,
    list_datasets,
    load_dataset,
    prepare,
    read_prices,
)
from stressflow.models.dims import FEATURE, FEATURES, TIME

REPO_ROOT = Path(__file__).resolve().parents[1]
SPREAD, VOLATILITY, VOLUME, IMPACT = FEATURES
# DataWarnings are asserted with pytest.warns where they matter; elsewhere (e.g. the ever-present
# zero Abdi-Ranaldo spread estimates) they are expected and silenced.
pytestmark = pytest.mark.filterwarnings("ignore::stressflow.data.DataWarning")

#: name -> (rows, first date, last date, columns), as stated in datasets/SOURCES.md.
EXPECTED = {
    "sp500": (9076, "1983-01-03", "2018-12-31", 6),
    "spy": (6528, "1993-01-29", "2018-12-31", 6),
    "vix": (7304, "1990-01-02", "2018-12-31", 4),
    "vw": (5321, "1997-01-02", "2017-10-31", 6),
    "gme": (4250, "2002-02-13", "2018-12-31", 6),
}
#: Bundled rate series (kind "series"; transition covariates), as stated in SOURCES.md.
EXPECTED_SERIES = {
    "ted": (7815, "1986-01-02", "2017-10-30", 1),
    "baa10y": (7967, "1986-01-02", "2017-11-03", 1),
    "treasury": (14234, "1962-01-02", "2018-12-31", 4),
}
OHLCV = ["open", "high", "low", "close", "adj_close", "volume"]


def quiet_prepare(*args, **kwargs):
    """prepare() with its (tested elsewhere) DataWarnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return prepare(*args, **kwargs)


@pytest.fixture(scope="module")
def sp500_1990():
    return quiet_prepare("sp500", start="1990-01-01", end="2018-12-31")


@pytest.fixture(scope="module")
def sp500_full():
    return quiet_prepare("sp500")


@pytest.fixture(scope="module")
def vw_full():
    return quiet_prepare("vw")


# --------------------------------------------------------------------------- bundled data


def test_list_datasets_describes_every_file():
    table = list_datasets()
    assert list(table.index) == list(EXPECTED) + list(EXPECTED_SERIES)
    assert list(list_datasets(kind="prices").index) == list(EXPECTED)
    assert {"description", "first", "last", "rows", "columns", "source_file"} <= set(table.columns)
    for name, (rows, first, last, _) in {**EXPECTED, **EXPECTED_SERIES}.items():
        assert table.loc[name, "rows"] == rows
        assert table.loc[name, "first"] == pd.Timestamp(first)
        assert table.loc[name, "last"] == pd.Timestamp(last)
        assert (REPO_ROOT / "data" / "datasets" / table.loc[name, "source_file"]).is_file()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_load_every_dataset(name):
    rows, first, last, n_columns = EXPECTED[name]
    frame = load_dataset(name)
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert frame.index.name == "date"
    assert len(frame) == rows
    assert frame.index[0] == pd.Timestamp(first) and frame.index[-1] == pd.Timestamp(last)
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert list(frame.columns) == OHLCV[:4] + (OHLCV[4:] if n_columns == 6 else [])
    assert all(dtype == np.float64 for dtype in frame.dtypes)


def test_load_dataset_raw_and_independent_copies():
    vw = load_dataset("vw")
    assert int((vw["volume"] == 0).sum()) == 40  # raw: holiday rows are kept (SOURCES.md)
    vw.iloc[0, 0] = -1.0
    assert load_dataset("vw").iloc[0, 0] > 0


def test_load_dataset_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'.*'sp500'.*'gme'"):
        load_dataset("nope")


#: Bundled files that are not market series: the crisis catalogue (evaluation only) and its
#: provenance, documented in CATALOGUE.md rather than SOURCES.md.
CATALOGUE_FILES = {"crisis_catalogue.csv", "CATALOGUE.md"}


def test_bundled_files_have_sources_and_no_ice_series():
    bundled = REPO_ROOT / "data" / "datasets"
    names = {p.name for p in bundled.iterdir()} - CATALOGUE_FILES
    assert not any("oas" in n for n in names)
    assert {"SOURCES.md"} | set(list_datasets()["source_file"]) == names
    sources = (bundled / "SOURCES.md").read_text()
    assert "Terms of use" in sources and "How they were prepared" in sources
    for name in names - {"SOURCES.md"}:
        assert f"| `{name}` |" in sources
    assert "| `us_hy_oas" not in sources


def test_bundled_files_are_byte_identical_to_shared(shared_data):
    bundled = REPO_ROOT / "data" / "datasets"
    names = {p.name for p in bundled.iterdir()} - {"SOURCES.md"} - CATALOGUE_FILES
    shared = shared_data
    for name in names - {"SOURCES.md"}:
        assert (bundled / name).read_bytes() == (shared / name).read_bytes(), name
    shared_rows = (shared / "SOURCES.md").read_text().splitlines()
    for line in (bundled / "SOURCES.md").read_text().splitlines():
        if line.startswith("| `"):
            assert line in shared_rows


# --------------------------------------------------------------------------- S&P 500


def test_sp500_1990_2018_standardised(sp500_1990):
    prep = sp500_1990
    dates = load_dataset("sp500").loc["1990":"2018"].index
    for frame in (prep.features, prep.raw):
        assert list(frame.columns) == list(FEATURES)
        assert frame.columns.name == FEATURE and frame.index.name == TIME
        assert frame.index.equals(dates.rename(TIME))
    assert prep.prices.index.equals(dates)
    values = prep.features.to_numpy()
    present = ~np.isnan(values)
    assert np.isfinite(values[present]).all()
    assert np.allclose(np.nanmean(values, axis=0), 0.0, atol=1e-9)
    assert np.allclose(np.nanstd(values, axis=0), 1.0, atol=1e-9)
    # volatility, volume and impact are complete over 1990-2018 (history starts 1983)
    assert prep.report.n_missing[VOLATILITY] == 0
    assert prep.report.n_missing[VOLUME] == 0
    assert prep.report.n_missing[IMPACT] == 0
    assert prep.report.n_warmup == 0
    # with negative two-day estimates floored at zero, the spread is complete too
    assert prep.report.n_missing[SPREAD] == prep.report.n_zero_spread == 0
    # raw -> features is exactly the stored transform
    tr = prep.transform
    expected = (prep.raw - np.array(tr.center)) / np.array(tr.scale)
    pd.testing.assert_frame_equal(prep.features, expected)
    # a stress day is far in the upper tail of volatility
    assert prep.features.loc["2008-10-10", VOLATILITY] > 2.5


def test_sp500_report_is_serialisable_and_readable(sp500_1990):
    report = sp500_1990.report
    assert isinstance(report, DataReport)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["n_rows"] == len(sp500_1990.features)
    assert d["gaps"] == [["2001-09-10", "2001-09-17"]]
    text = str(report)
    assert "1990-01-02" in text and "gaps: 1" in text and "2001-09-10 -> 2001-09-17" in text


def test_sp500_observable_formulas(sp500_1990):
    """Check each raw observable against a direct computation from the file."""
    sp = load_dataset("sp500")
    day = pd.Timestamp("2008-10-10")
    t = sp.index.get_loc(day)
    h, lo, c, v = (sp[k].to_numpy() for k in ("high", "low", "close", "volume"))
    raw = sp500_1990.raw.loc[day]
    # Parkinson
    assert raw[VOLATILITY] == pytest.approx(
        0.5 * np.log(np.log(h[t] / lo[t]) ** 2 / (4 * np.log(2)))
    )
    # log abnormal volume: previous 63 rows, excluding t
    assert raw[VOLUME] == pytest.approx(np.log(v[t]) - np.median(np.log(v[t - 63 : t])))
    # log abnormal Amihud, |r| floored at 1 bp, previous 252 rows
    r = np.abs(np.diff(np.log(c)))
    log_illiq = np.log(np.maximum(r, 1e-4)) - np.log(c[1:]) - np.log(v[1:])  # row i+1
    assert raw[IMPACT] == pytest.approx(
        log_illiq[t - 1] - np.median(log_illiq[t - 1 - 252 : t - 1])
    )
    # Abdi-Ranaldo two-day estimates floored at 0, 21-day mean, assigned to the later day
    lc, eta = np.log(c), (np.log(h) + np.log(lo)) / 2
    s2 = 4 * (lc[:-1] - eta[:-1]) * (lc[:-1] - eta[1:])  # s2[i] belongs to row i+1
    mean_s2 = np.maximum(s2[t - 21 : t], 0.0).mean()
    assert mean_s2 > 0
    assert raw[SPREAD] == pytest.approx(np.log(np.sqrt(mean_s2)))


def test_sp500_flat_row_1983_and_warmup(sp500_full):
    prep, day = sp500_full, pd.Timestamp("1983-06-30")
    assert day in prep.features.index
    assert prep.report.n_flat_range == 1 and prep.report.flat_range_dates == (day,)
    assert np.isnan(prep.features.loc[day, VOLATILITY])
    assert np.isnan(prep.features.loc[day, SPREAD])
    assert np.isfinite(prep.features.loc[day, [VOLUME, IMPACT]]).all()
    # warm-up at the start of the file: missing and counted, not an error
    assert prep.report.n_warmup == 1 + 252 // 3
    assert prep.features[IMPACT].iloc[: 1 + 252 // 3].isna().all()
    assert prep.features[IMPACT].iloc[1 + 252 // 3 :].notna().all()
    assert prep.features[VOLUME].iloc[: 63 // 3].isna().all()
    assert prep.features[VOLUME].iloc[63 // 3 :].notna().all()


def test_sp500_911_gap_reported():
    with pytest.warns(DataWarning, match=r"1 gap.*2001-09-10 -> 2001-09-17"):
        prep = prepare("sp500", start="2001-01-01", end="2002-12-31")
    assert prep.report.n_gaps == 1
    assert prep.report.gaps == ((pd.Timestamp("2001-09-10"), pd.Timestamp("2001-09-17")),)
    # the gap is one step: nothing is inserted
    assert (
        prep.features.index.get_loc("2001-09-17") == prep.features.index.get_loc("2001-09-10") + 1
    )


# --------------------------------------------------------------------------- VW, SPY, GME


def test_vw_zero_volume_holidays(vw_full):
    prep, raw = vw_full, load_dataset("vw")
    holidays = raw.index[raw["volume"] == 0]
    assert len(holidays) == 40  # SOURCES.md
    assert prep.report.n_zero_volume == 40
    assert prep.report.zero_volume_dates == tuple(holidays)
    assert prep.features.index.equals(raw.index.rename(TIME))  # no date dropped
    assert prep.features.loc[holidays].isna().all().all()
    with pytest.warns(DataWarning, match=r"3 zero-volume row\(s\).*2005-03-25"):
        window = prepare("vw", start="2005-01-01", end="2012-12-31")
    assert window.report.n_zero_volume == 3
    assert window.features.loc[list(window.report.zero_volume_dates)].isna().all().all()


def test_vw_holidays_enter_no_trailing_window(vw_full):
    """A zero-volume holiday is skipped, so the next day's return is against the last trade."""
    raw = load_dataset("vw")
    day_after = raw.index[raw.index.get_loc(pd.Timestamp("2005-03-28")) + 1]
    traded = raw[raw["volume"] > 0]
    t = traded.index.get_loc(day_after)
    lc, lv = np.log(traded["close"].to_numpy()), np.log(traded["volume"].to_numpy())
    log_illiq = np.log(np.maximum(np.abs(np.diff(lc)), 1e-4)) - lc[1:] - lv[1:]  # row i+1
    assert vw_full.raw.loc[day_after, IMPACT] == pytest.approx(
        log_illiq[t - 1] - np.median(log_illiq[t - 1 - 252 : t - 1])
    )
    assert vw_full.raw.loc[day_after, VOLUME] == pytest.approx(lv[t] - np.median(lv[t - 63 : t]))


def test_vw_close_outside_range(vw_full):
    raw = load_dataset("vw")
    bad = raw.index[(raw["close"] > raw["high"]) | (raw["close"] < raw["low"])]
    assert vw_full.report.n_range_inconsistent == len(bad) == 49
    assert vw_full.features.loc[bad, [SPREAD, VOLATILITY]].isna().all().all()
    assert vw_full.features.loc[bad, VOLUME].notna().all()


@pytest.mark.parametrize("name", ["spy", "gme"])
def test_other_equities_prepare(name):
    prep = quiet_prepare(name, start="2005-01-01", end="2012-12-31")
    assert prep.report.n_zero_volume == 0 and prep.report.n_range_inconsistent == 0
    assert prep.report.n_missing[VOLATILITY] == 0 and prep.report.n_missing[IMPACT] == 0
    assert np.allclose(prep.features.mean(), 0.0, atol=1e-9)


def test_hy_oas_as_spread_column(load_shared_series):
    oas = load_shared_series("us_hy_oas")
    joined = load_dataset("sp500").join(oas["hy_oas_pct"], how="left")
    with pytest.warns(DataWarning, match="empty cells.*hy_oas_pct"):
        prep = prepare(joined, start="1997-01-01", spread_column="hy_oas_pct")
    window = joined.loc["1997":]
    assert prep.report.spread_source == "hy_oas_pct"
    assert prep.report.n_zero_spread == 0
    assert prep.report.n_missing[SPREAD] == window["hy_oas_pct"].isna().sum()
    assert prep.report.n_empty_cells == {"hy_oas_pct": int(window["hy_oas_pct"].isna().sum())}
    np.testing.assert_allclose(prep.raw[SPREAD].to_numpy(), np.log(window["hy_oas_pct"]))
    assert prep.transform.spread_column == "hy_oas_pct"
    assert prep.raw[SPREAD].idxmax() == pd.Timestamp("2008-12-15")  # SOURCES.md peak
    # the same transform reproduces the spread on a later window
    later = quiet_prepare(joined, start="2015-01-01", transform=prep.transform)
    np.testing.assert_allclose(later.raw[SPREAD], np.log(joined.loc["2015":, "hy_oas_pct"]))


# --------------------------------------------------------------------------- transform


def test_no_look_ahead():
    base = load_dataset("sp500").loc["2004":"2009"]
    tr = quiet_prepare(base, start="2006-01-01").transform
    cut = pd.Timestamp("2008-06-30")
    after = base.index > cut
    rng = np.random.default_rng(0)
    edited = base.copy()
    factor = rng.uniform(0.5, 1.5, after.sum())
    for column in ["open", "high", "low", "close", "adj_close"]:
        edited.loc[after, column] *= factor
    edited.loc[after, "volume"] *= rng.uniform(0.2, 5.0, after.sum())
    p1 = quiet_prepare(base, start="2006-01-01", transform=tr)
    p2 = quiet_prepare(edited, start="2006-01-01", transform=tr)
    p3 = quiet_prepare(base.loc[:cut], start="2006-01-01", transform=tr)
    pd.testing.assert_frame_equal(p1.features.loc[:cut], p2.features.loc[:cut])
    pd.testing.assert_frame_equal(p1.features.loc[:cut], p3.features)
    assert not p1.features.loc[cut:].iloc[1:].equals(p2.features.loc[cut:].iloc[1:])


def test_transform_round_trip(sp500_1990):
    tr = sp500_1990.transform
    assert tr.features == FEATURES
    d = tr.to_dict()
    assert FeatureTransform.from_dict(json.loads(json.dumps(d))) == tr
    assert FeatureTransform.from_json(tr.to_json()) == tr
    # as netCDF attributes come back: numpy arrays and numpy scalars
    attrs = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()}
    attrs["volume_window"] = np.int64(attrs["volume_window"])
    assert FeatureTransform.from_dict(attrs) == tr
    assert FeatureTransform.from_dict({**d, "scale": [2.0, 1.0, 1.0, 1.0]}) != tr
    pd.testing.assert_frame_equal(tr.inverse(tr.apply(sp500_1990.raw)), sp500_1990.raw)
    with pytest.raises(ValueError, match="scale"):
        FeatureTransform.from_dict({**d, "scale": [0.0, 1.0, 1.0, 1.0]})


def test_prepare_with_given_transform_uses_its_center_and_scale(sp500_1990):
    tr = sp500_1990.transform
    sp = load_dataset("sp500").loc["2005":]
    later = quiet_prepare(sp, start="2007-01-01", transform=tr)
    assert later.transform is tr
    assert later.report.transform_fitted is False
    expected = (later.raw - np.array(tr.center)) / np.array(tr.scale)
    pd.testing.assert_frame_equal(later.features, expected)
    # the raw observables are those of a fresh fit (same options), only the scaling differs
    fresh = quiet_prepare(sp, start="2007-01-01")
    pd.testing.assert_frame_equal(later.raw, fresh.raw)
    assert fresh.transform.center != tr.center
    assert not np.allclose(later.features.mean(), 0.0, atol=1e-3)  # not centred by tr
    with pytest.raises(ValueError, match="volume_window=126 conflicts"):
        prepare(sp, start="2007-01-01", transform=tr, volume_window=126)


def test_windows_recorded_in_transform():
    prep = quiet_prepare("spy", start="2000-01-01", volume_window=126, spread_window=42)
    assert prep.transform.volume_window == 126 and prep.transform.spread_window == 42
    again = quiet_prepare("spy", start="2010-01-01", transform=prep.transform)
    assert again.transform.volume_window == 126
    pd.testing.assert_frame_equal(again.raw, prep.raw.loc["2010":])


# --------------------------------------------------------------------------- inputs


def test_caller_dataframe_not_mutated():
    original = load_dataset("vw").loc["2004":"2006"].reset_index()
    original.loc[5, "close"] = np.nan
    original["extra"] = np.linspace(1.0, 2.0, len(original))
    kept = copy.deepcopy(original)
    read_prices(original)
    quiet_prepare(original, extra_columns=["extra"], min_rows=10)
    quiet_prepare(
        original.rename(columns={"close": "Close"}), columns={"Close": "close"}, min_rows=10
    )
    pd.testing.assert_frame_equal(original, kept)


def test_read_prices_from_csv_and_parquet_with_mapping(tmp_path):
    sp = load_dataset("sp500").loc["2010":"2010-06"]
    user = sp.reset_index().rename(columns={"date": "Date", "close": "Close", "volume": "Vol"})
    mapping = {"Date": "date", "Close": "close", "Vol": "volume"}
    user.to_csv(tmp_path / "p.csv", index=False)
    from_csv = read_prices(tmp_path / "p.csv", columns=mapping)
    pd.testing.assert_frame_equal(from_csv, sp, check_freq=False, check_index_type=False)
    pytest.importorskip("pyarrow")
    user.to_parquet(tmp_path / "p.parquet")
    from_parquet = read_prices(str(tmp_path / "p.parquet"), columns=mapping)
    pd.testing.assert_frame_equal(from_parquet, sp, check_freq=False, check_index_type=False)
    prep = quiet_prepare(tmp_path / "p.csv", columns=mapping, min_rows=50)
    assert len(prep.features) == len(sp)


def test_read_prices_accepts_index_and_dataset_name():
    sp = load_dataset("sp500").loc["2010"]
    pd.testing.assert_frame_equal(read_prices(sp), sp)
    assert len(read_prices("spy")) == EXPECTED["spy"][0]


def test_extra_columns_log_decision():
    sp = load_dataset("sp500").loc["2008":"2010"].copy()
    sp["ret"] = np.log(sp["close"]).diff().fillna(0.0)
    with pytest.warns(DataWarning, match="warm-up"):
        prep = prepare(sp, extra_columns=["adj_close", "ret"])
    assert list(prep.features.columns) == [*FEATURES, "adj_close", "ret"]
    assert prep.report.log_transformed == ("adj_close",)
    assert prep.transform.log_columns == ("adj_close",)
    np.testing.assert_allclose(prep.raw["adj_close"], np.log(sp["adj_close"]))
    np.testing.assert_allclose(prep.raw["ret"], sp["ret"])
    assert "log-transformed extra columns: adj_close" in str(prep.report)
