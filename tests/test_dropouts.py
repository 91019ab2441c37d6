"""Volume dropouts (early closes, bad vendor volume rows) on the real bundled series: flagged
causally, counted and warned about in both modes; with ``mask`` only that day's volume and
impact are missing, with the default ``keep`` nothing changes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from stressflow.data import DataWarning, load_dataset, prepare
from stressflow.data.dropouts import DROPOUT_SD, find_volume_dropouts
from stressflow.models.dims import FEATURES

SPREAD, VOLATILITY, VOLUME, IMPACT = FEATURES
# NYSE early closes (day after Thanksgiving, Christmas Eve, July 3) and two of the vendor's
# wrong composite-volume rows
EARLY_CLOSES = ["2015-11-27", "2015-12-24", "2018-07-03", "2018-11-23"]
BAD_VOLUME_ROWS = ["2008-08-05", "2011-02-22"]
pytestmark = pytest.mark.filterwarnings("ignore::stressflow.data.DataWarning")


def quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return prepare(*args, **kwargs)


@pytest.fixture(scope="module")
def sp_mask():
    return quiet("sp500", start="2005-01-01", volume_dropouts="mask")


@pytest.fixture(scope="module")
def sp_keep():
    return quiet("sp500", start="2005-01-01")  # the default keeps them


def test_early_closes_and_bad_volume_rows_are_flagged_and_masked(sp_mask, sp_keep):
    flagged = set(sp_mask.report.volume_dropout_dates)
    for day in EARLY_CLOSES + BAD_VOLUME_ROWS:
        assert pd.Timestamp(day) in flagged
        row = sp_mask.features.loc[day]
        assert np.isnan(row[VOLUME]) and np.isnan(row[IMPACT])
        assert np.isfinite(row[VOLATILITY]) and np.isfinite(row[SPREAD])
        assert sp_keep.raw.loc[day, VOLUME] < np.log(0.6)  # kept: under 60% of the usual volume
    assert sp_mask.report.n_volume_dropouts == len(flagged) == sp_keep.report.n_volume_dropouts
    assert (sp_mask.report.volume_dropouts, sp_keep.report.volume_dropouts) == ("mask", "keep")
    assert sp_mask.report.n_missing[VOLUME] - sp_keep.report.n_missing[VOLUME] == len(flagged)
    # only the flagged days change, and only in volume and impact
    same = ~sp_mask.raw.index.isin(list(flagged))
    pd.testing.assert_frame_equal(sp_mask.raw.loc[same], sp_keep.raw.loc[same])
    pd.testing.assert_frame_equal(sp_mask.raw[[SPREAD, VOLATILITY]],
                                  sp_keep.raw[[SPREAD, VOLATILITY]])


def test_no_crisis_day_is_a_dropout(sp_mask):
    """Heavy-volume stress days are never flagged: the rule is one-sided."""
    flagged = pd.DatetimeIndex(sp_mask.report.volume_dropout_dates)
    assert not ((flagged >= "2008-09-01") & (flagged <= "2008-12-19")).any()
    assert not ((flagged >= "2007-08-01") & (flagged <= "2007-08-31")).any()


def test_warned_with_count_and_dates():
    with pytest.warns(DataWarning, match=r"\d+ volume dropout\(s\).*first: 2015-11-27"):
        prepare("sp500", start="2015-06-01", end="2015-12-31")


def test_an_update_flags_the_same_days(sp_mask):
    """Causal rule: new rows prepared with the fitted transform get the fit's flags, and the
    fit's treatment, which the transform carries."""
    assert sp_mask.transform.volume_dropouts == "mask"
    later = quiet("sp500", start="2018-01-01", transform=sp_mask.transform)
    expect = [d for d in sp_mask.report.volume_dropout_dates if d >= pd.Timestamp("2018-01-01")]
    assert list(later.report.volume_dropout_dates) == expect
    assert np.isnan(later.features.loc["2018-11-23", VOLUME])


def test_the_transform_stores_the_treatment(sp_mask, sp_keep):
    from stressflow.data.transform import FeatureTransform

    masked = sp_mask.transform
    assert FeatureTransform.from_json(masked.to_json()) == masked
    # "keep" is not written, so the format is the one from before the option
    assert "volume_dropouts" not in sp_keep.transform.to_dict()
    assert FeatureTransform.from_dict(sp_keep.transform.to_dict()).volume_dropouts == "keep"
    with pytest.raises(ValueError, match="conflicts with the given transform"):
        prepare("sp500", start="2018-01-01", transform=masked, volume_dropouts="keep")


def test_injected_low_volume_is_flagged_high_volume_is_not():
    """On GME (volume three times as noisy as the S&P 500's), a day at 1% of its volume is a
    dropout, a day at 100x is not; the caller's frame is not modified."""
    frame = load_dataset("gme").loc["2010":"2012"].reset_index()
    before = frame.copy()
    low, high = 300, 400
    changed = frame.copy()
    changed.loc[low, "volume"] *= 0.01
    changed.loc[high, "volume"] *= 100
    prep = quiet(changed, volume_dropouts="mask")
    pd.testing.assert_frame_equal(changed.drop(index=[low, high]), before.drop(index=[low, high]))
    assert list(prep.report.volume_dropout_dates) == [changed.loc[low, "date"]]
    assert np.isfinite(prep.features.loc[changed.loc[high, "date"], VOLUME])
    assert np.isnan(prep.features.loc[changed.loc[low, "date"], VOLUME])
    assert quiet(before).report.n_volume_dropouts == 0


def test_rule_threshold_and_warm_up():
    rng = np.random.default_rng(0)
    v = pd.Series(rng.normal(0.0, 0.2, 400), index=pd.bdate_range("2001-01-01", periods=400))
    v.iloc[50] = -10.0  # inside the 60-value warm-up: never flagged
    v.iloc[300] = -10.0
    v.iloc[310] = -0.2 * (DROPOUT_SD - 1.5)  # 3.5 sd below: not a dropout
    flags = find_volume_dropouts(v)
    assert list(flags.index[flags]) == [v.index[300]]


def test_unknown_mode_is_a_value_error():
    with pytest.raises(ValueError, match="volume_dropouts must be one of"):
        prepare("sp500", volume_dropouts="drop")
