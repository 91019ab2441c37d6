"""Transition covariates on the real bundled data: join, treatments, transform, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from stressflow.data import (
    DataError,
    DataWarning,
    FeatureTransform,
    compute_covariates,
    list_covariates,
    list_datasets,
    load_dataset,
    prepare,
    read_prices,
)
from stressflow.models.dims import TIME

pytestmark = pytest.mark.filterwarnings("ignore::stressflow.data.DataWarning")

#: Bundled covariate -> (bundled dataset, column, log?, window end inside its coverage).
BUNDLED = {
    "ted": ("ted", "ted_spread_pct", False, "2017-10-30"),
    "baa10y": ("baa10y", "baa10y_pct", False, "2017-11-03"),
    "vix": ("vix", "close", True, "2018-12-31"),
}


def quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return prepare(*args, **kwargs)


def asof(series: pd.Series, calendar: pd.DatetimeIndex) -> tuple[pd.Series, pd.Series]:
    """Independent as-of join: last observation on or before each date, and 'carried'."""
    series = series.dropna()
    joined = series.reindex(series.index.union(calendar)).ffill().reindex(calendar)
    return joined, pd.Series(~calendar.isin(series.index), index=calendar)


def longest_run(flags: pd.Series) -> int:
    runs = (~flags).cumsum()
    return int(flags.groupby(runs).sum().max()) if flags.any() else 0


def parkinson_low_vol(prices: pd.DataFrame) -> pd.Series:
    """The documented low_vol formula, written out directly with pandas."""
    traded = prices[prices["volume"] != 0]
    high, low, close = traded["high"], traded["low"], traded["close"]
    usable = (high > low) & (close >= low) & (close <= high)  # flat / inconsistent: missing
    hl = np.log(high / low).where(usable)
    v = 0.5 * np.log(hl**2 / (4 * np.log(2)))
    trend = v.rolling(1260, min_periods=630).mean()
    return -(v - trend).rolling(252, min_periods=126).mean()


@pytest.fixture(scope="module")
def sp500():
    return load_dataset("sp500")


# --------------------------------------------------------------------------- bundled series


def test_series_datasets_listed_and_loaded():
    table = list_datasets(kind="series")
    assert list(table.index) == ["ted", "baa10y", "treasury"]
    assert list(list_datasets(kind="prices").index) == ["sp500", "spy", "vix", "vw", "gme"]
    assert (list_datasets()["kind"] == "series").sum() == 3
    assert table.loc["ted", "rows"] == 7815 and table.loc["baa10y", "rows"] == 7967
    assert table.loc["ted", "last"] == pd.Timestamp("2017-10-30")
    assert list(load_dataset("treasury").columns) == ["dgs3mo", "dgs2", "dgs10", "dgs30"]
    with pytest.raises(ValueError, match="kind must be one of"):
        list_datasets(kind="bonds")
    with pytest.raises(DataError, match="'ted' is a rate series without prices"):
        read_prices("ted")


def test_registry_documents_every_covariate():
    table = list_covariates()
    assert {"ted", "hy_oas", "baa10y", "vix", "d_ted", "d_hy_oas", "d_vix", "low_vol"} <= set(
        table.index
    )
    assert table.loc["hy_oas", "bundled"] == "" and table.loc["ted", "bundled"] == "ted"
    assert table["formula"].str.len().min() > 2


# --------------------------------------------------------------------------- the join


@pytest.mark.parametrize("name", list(BUNDLED))
def test_join_on_sp500_matches_independent_asof(sp500, name):
    dataset, column, use_log, end = BUNDLED[name]
    with pytest.warns(DataWarning, match=rf"transition covariate '{name}': \d+ day"):
        prep = prepare("sp500", start="1990-01-01", end=end, transition_covariates=(name,))
    calendar = prep.features.index
    source = load_dataset(dataset)[column]
    expected, carried = asof(source, calendar)
    expected = np.log(expected) if use_log else expected
    raw = prep.raw_covariates[name]
    np.testing.assert_array_equal(raw.to_numpy(), expected.to_numpy())
    report = prep.report
    assert report.n_covariate_carried[name] == int(carried.sum()) > 0
    assert report.covariate_carried_dates[name] == tuple(calendar[carried.to_numpy()])
    assert report.covariate_max_carried[name] == longest_run(carried)
    in_span = source.index[(source.index >= calendar[0]) & (source.index <= calendar[-1])]
    assert report.n_covariate_off_calendar[name] == int((~in_span.isin(calendar)).sum())
    assert report.covariate_sources[name] == f"bundled dataset {dataset!r}"
    z = prep.covariates[name]
    assert not z.isna().any() and prep.covariates.shape == (len(prep.features), 1)
    assert abs(z.mean()) < 1e-12 and z.std(ddof=0) == pytest.approx(1.0, abs=1e-12)
    assert prep.covariates.index.equals(prep.features.index) and z.index.name == TIME
    assert prep.covariates.columns.name == "covariate"


def test_carried_counts_on_sp500_1990_2017():
    prep = quiet(
        "sp500", start="1990-01-01", end="2017-10-30", transition_covariates=("ted", "baa10y")
    )
    # Numbers measured once and checked against the independent join above.
    assert prep.report.n_covariate_carried == {"ted": 187, "baa10y": 61}
    assert prep.report.covariate_max_carried == {"ted": 2, "baa10y": 1}


def test_changes_are_five_row_differences_of_the_aligned_level():
    names = ("vix", "d_vix", "ted", "d_ted")
    prep = quiet("sp500", start="1990-01-10", end="2017-10-30", transition_covariates=names)
    full = compute_covariates(names, "sp500")
    for level in ("vix", "ted"):
        expected = (full[level] - full[level].shift(5)).loc[prep.features.index]
        np.testing.assert_allclose(prep.raw_covariates[f"d_{level}"], expected, rtol=0, atol=0)
        carried = prep.report.n_covariate_carried
        assert carried[f"d_{level}"] == carried[level]


def test_hy_oas_from_shared_file(load_shared_series):
    oas = load_shared_series("us_hy_oas")
    with pytest.raises(DataError, match=r"'hy_oas'.*needs a column 'hy_oas_pct'.*not bundled"):
        prepare("sp500", start="1997-01-01", transition_covariates=("hy_oas",))
    prep = quiet("sp500", start="1997-01-01", transition_covariates=("hy_oas",), covariate_data=oas)
    expected, carried = asof(oas["hy_oas_pct"], prep.features.index)
    np.testing.assert_array_equal(prep.raw_covariates["hy_oas"], expected)
    assert prep.report.n_covariate_carried["hy_oas"] == int(carried.sum()) == 2
    dates = oas.index[oas.index >= prep.features.index[0]]
    off = int((~dates.isin(prep.features.index)).sum())
    assert prep.report.n_covariate_off_calendar["hy_oas"] == off > 150  # month-end weekends


def test_ted_after_2017_raises_with_coverage():
    with pytest.raises(
        DataError,
        match=r"'ted' has no value on 2017-11-07.*288 uncovered.*"
        r"covers 1986-01-02 \.\. 2017-10-30.*covariate_max_stale=5",
    ):
        prepare("sp500", start="1990-01-01", end="2018-12-31", transition_covariates=("ted",))
    # The limit is the only thing that stops the carry: five rows past the end are allowed.
    prep = quiet("sp500", start="2017-01-01", end="2017-11-06", transition_covariates=("ted",))
    last = load_dataset("ted")["ted_spread_pct"].iloc[-1]
    assert prep.raw_covariates["ted"].iloc[-6:].eq(last).all()
    assert prep.report.covariate_max_carried["ted"] == 5
    with pytest.raises(DataError, match=r"'ted' has no value on 2017-11-07"):
        prepare("sp500", start="2017-01-01", end="2017-11-07", transition_covariates=("ted",))


def test_series_start_and_warmup_raise():
    with pytest.raises(DataError, match=r"'d_vix' has no value on 1990-01-02.*5 uncovered"):
        prepare("sp500", start="1990-01-01", transition_covariates=("d_vix",))
    with pytest.raises(DataError, match=r"'low_vol' has no value on 1993-01-29"):
        prepare("spy", transition_covariates=("low_vol",))


def test_compute_covariates_marks_uncovered_days_nan():
    raw = compute_covariates(["ted", "vix"], "sp500")
    assert raw.index.equals(load_dataset("sp500").index)
    assert raw.loc[:"1989-12-29", "vix"].isna().all() and raw.loc["1990-01-02", "vix"] > 0
    assert (
        raw.loc["2017-11-07":, "ted"].isna().all()
        and raw.loc["1986-01-02":"2017-11-06", "ted"].notna().all()
    )


# --------------------------------------------------------------------------- low_vol


def test_low_vol_matches_direct_pandas_formula(sp500):
    prep = quiet("sp500", start="1990-01-01", transition_covariates=("low_vol",))
    expected = parkinson_low_vol(sp500).loc[prep.features.index]
    np.testing.assert_allclose(prep.raw_covariates["low_vol"], expected, rtol=1e-12, atol=1e-12)
    assert prep.report.n_covariate_carried["low_vol"] == 0
    low = prep.raw_covariates["low_vol"]
    # Sign: the calm of 2005-2006 ranks high, the months after Lehman low.
    assert low.loc["2006-12"].mean() > 0 > low.loc["2009-06"].mean()


def test_low_vol_carries_over_zero_volume_rows():
    vw = load_dataset("vw")
    prep = quiet("vw", start="2002-01-01", transition_covariates=("low_vol",))
    zero = (vw.loc["2002-01-01":, "volume"] == 0).to_numpy()
    assert prep.report.n_covariate_carried["low_vol"] == int(zero.sum()) > 0
    expected, _ = asof(parkinson_low_vol(vw), prep.features.index)
    np.testing.assert_allclose(prep.raw_covariates["low_vol"], expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- no look-ahead


@pytest.mark.parametrize("cut", ["2008-09-15", "2011-08-05"])
def test_no_lookahead(sp500, cut):
    names = ("low_vol", "d_vix", "ted", "term")
    yields = load_dataset("treasury")
    data = pd.DataFrame({"term": yields["dgs10"] - yields["dgs3mo"]}).dropna()
    data["ted_spread_pct"] = load_dataset("ted")["ted_spread_pct"]
    full = quiet(
        sp500, start="1995-01-01", end="2017-10-30", transition_covariates=names,
        covariate_data=data,
    )  # fmt: skip
    short = quiet(
        sp500.loc[:cut], start="1995-01-01", transform=full.transform,
        covariate_data=data.loc[:cut],
    )  # fmt: skip
    head = full.covariates.loc[:cut]
    pd.testing.assert_frame_equal(short.covariates, head, check_exact=True)
    pd.testing.assert_frame_equal(short.raw_covariates, full.raw_covariates.loc[:cut])


# --------------------------------------------------------------------------- user columns


def test_user_columns_in_prices_and_covariate_data(sp500):
    prices = sp500.copy()
    momentum = np.log(prices["close"]).diff(20)
    momentum.iloc[np.arange(300, 9000, 500)] = np.nan  # empty cells: carried forward
    prices["momentum"] = momentum
    yields = load_dataset("treasury")
    data = pd.DataFrame({"term": yields["dgs10"] - yields["dgs3mo"]}).dropna()
    prices_before, data_before = prices.copy(), data.copy()
    prep = quiet(
        prices, start="1990-01-01", transition_covariates=("momentum", "term", "vix"),
        covariate_data=data.reset_index(),
    )  # fmt: skip
    pd.testing.assert_frame_equal(prices, prices_before)  # inputs not mutated
    pd.testing.assert_frame_equal(data, data_before)
    calendar = prep.features.index
    for name, source in (("momentum", momentum), ("term", data["term"])):
        expected, carried = asof(source, calendar)
        np.testing.assert_array_equal(prep.raw_covariates[name], expected)
        assert prep.report.n_covariate_carried[name] == int(carried.sum())
    assert prep.report.n_covariate_carried["momentum"] == 15  # 3 of 18 empty cells pre-1990
    assert prep.report.covariate_sources["term"] == "column 'term' of covariate_data"
    assert list(prep.covariates.columns) == ["momentum", "term", "vix"]


def test_monthly_user_series_needs_a_longer_carry():
    baa = load_dataset("baa10y")["baa10y_pct"]
    monthly = baa.groupby(baa.index.to_period("M")).tail(1).rename("baa_monthly")
    with pytest.raises(DataError, match=r"'baa_monthly' has no value on 1990-01-0\d"):
        prepare("sp500", start="1990-01-01", end="2017-10-31",
                transition_covariates=("baa_monthly",), covariate_data=monthly)  # fmt: skip
    prep = quiet("sp500", start="1990-01-01", end="2017-10-31", covariate_max_stale=25,
                 transition_covariates=("baa_monthly",), covariate_data=monthly)  # fmt: skip
    assert prep.transform.covariate_max_stale == 25
    assert 18 <= prep.report.covariate_max_carried["baa_monthly"] <= 23


# --------------------------------------------------------------------------- bad input


def _vix_frame(value, date="2005-03-14"):
    frame = load_dataset("vix")[["close"]].rename(columns={"close": "vix_close"}).astype(object)
    frame.loc[date, "vix_close"] = value
    return frame


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_vix_frame("n/a"), r"column 'vix_close' has a non-numeric value 'n/a' on 2005-03-14"),
        (_vix_frame(np.inf), r"column 'vix_close' has an infinite value on 2005-03-14"),
        (_vix_frame(0.0), r"'vix'.*vix_close.*0\.0 \(<= 0, log undefined\) on 2005-03-14"),
    ],
)
def test_bad_covariate_values_name_column_and_date(data, match):
    with pytest.raises(DataError, match=match):
        prepare("sp500", start="2000-01-01", transition_covariates=("vix",), covariate_data=data)


def test_bad_covariate_requests():
    sp = load_dataset("sp500")
    with pytest.raises(DataError, match=r"'margin_debt' is neither registered"):
        prepare(sp, transition_covariates=("margin_debt",))
    with pytest.raises(DataError, match=r"column 'ted' in covariate_data has the name of"):
        prepare(sp, transition_covariates=("ted",), covariate_data=pd.DataFrame(
            {"ted": [1.0, 2.0]}, index=pd.to_datetime(["2000-01-03", "2000-01-04"])))  # fmt: skip
    both = pd.DataFrame({"x": 1.0}, index=sp.index)
    with pytest.raises(DataError, match=r"'x'.*both in covariate_data and in the price frame"):
        prepare(sp.assign(x=2.0), transition_covariates=("x",), covariate_data=both)
    with pytest.raises(DataError, match=r"covariate 'x' is constant over the window"):
        quiet(sp, start="2000-01-01", transition_covariates=("x",), covariate_data=both)
    dup = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.to_datetime(["2000-01-03"] * 2))
    with pytest.raises(DataError, match=r"covariate_data: duplicate date 2000-01-03"):
        prepare(sp, transition_covariates=("x",), covariate_data=dup)
    with pytest.raises(TypeError, match="covariate_data must be a pandas DataFrame"):
        prepare(sp, transition_covariates=("x",), covariate_data={"x": [1.0]})
    with pytest.raises(ValueError, match="distinct"):
        prepare(sp, transition_covariates=("vix", "vix"))
    with pytest.raises(ValueError, match="covariate_max_stale must be an integer >= 0"):
        prepare(sp, transition_covariates=("vix",), covariate_max_stale=-1)


# --------------------------------------------------------------------------- transform


@pytest.fixture(scope="module")
def fitted():
    return quiet(
        "sp500", start="1995-01-01", end="2016-12-31", transition_covariates=("vix", "low_vol")
    )


def test_transform_round_trip_and_reuse(fitted):
    tr = fitted.transform
    assert tr.covariates == ("vix", "low_vol") and tr.covariate_max_stale == 5
    raw = fitted.raw_covariates
    np.testing.assert_array_equal(tr.covariate_center, raw.mean().to_numpy())
    np.testing.assert_allclose(tr.covariate_scale, raw.std(ddof=0).to_numpy(), rtol=1e-13)
    assert FeatureTransform.from_dict(tr.to_dict()) == tr
    assert FeatureTransform.from_json(tr.to_json()) == tr
    assert tr.to_dict()["version"] == 2
    with pytest.raises(ValueError, match="conflicts with the given transform"):
        prepare("sp500", start="2017-01-01", transform=tr, transition_covariates=("ted",))
    later = quiet("sp500", start="2017-01-01", transform=tr)  # names come from the transform
    expected = (later.raw_covariates - np.asarray(tr.covariate_center)) / np.asarray(
        tr.covariate_scale
    )
    pd.testing.assert_frame_equal(later.covariates, expected, check_exact=True)
    assert later.report.transform_fitted is False and later.transform == tr


def test_old_transform_dicts_still_load():
    plain = quiet("sp500", start="2000-01-01", end="2010-12-31")
    old = json.loads(plain.transform.to_json())
    assert old["version"] == 1 and not any(k.startswith("covariate") for k in old)
    tr = FeatureTransform.from_dict(old)
    assert tr == plain.transform and tr.covariates == ()
    assert FeatureTransform.from_dict({k: v for k, v in old.items() if k != "version"}) == tr
    new = quiet("sp500", start="2011-01-01", transform=tr)
    assert new.covariates.shape == (len(new.features), 0) and new.covariates.index.name == TIME
    with pytest.raises(ValueError, match="version-1 FeatureTransform dict cannot have covariate"):
        FeatureTransform.from_dict({**old, "covariates": ["vix"]})


def test_report_serialises_covariate_counts(fitted):
    d = json.loads(json.dumps(fitted.report.to_dict()))
    assert d["covariates"] == ["vix", "low_vol"]
    assert d["n_covariate_carried"]["vix"] == len(d["covariate_carried_dates"]["vix"]) > 0
    assert "covariate vix (bundled dataset 'vix')" in str(fitted.report)
