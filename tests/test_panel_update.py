"""``update_panel`` / ``stressflow update`` of a panel fit: new days filtered without refitting.

Oracles: filtering the whole series (the fit's days and the new ones, standardised with the
fit's centre and scale) from the start with the same posterior draws, by the kernels; the
observables of ``prepare_panel`` on the longer window; one update against two in a row. Data:
the bundled S&P 500 and TED files (the session's shared pair fit, 2006-01-01..2009-06-30).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.data import DataError
from stressflow.data.panel import PANELS, prepare_panel
from stressflow.inference.apps.feed.panel_update import panel_standardisation, update_panel
from stressflow.inference.apps.migration import panel_spec
from stressflow.inference.fitting.panel_fit import panel_params
from stressflow.models.numerics import kernels
from stressflow.models.panel import asset_marginals, evaluate, panel_data

US = PANELS["us_markets"]
NEW_END = "2009-12-31"


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def updated(pair_fit):
    return _quiet(update_panel, pair_fit, "us_markets", end=NEW_END)


def test_update_equals_filtering_the_whole_series_with_the_same_draws(pair_fit, updated):
    spec = panel_spec(pair_fit)
    old_t = pair_fit["stages"].sizes["time"]
    st = updated["stages"]
    new_days = st["time"].values[old_t:]
    assert len(new_days) > 100 and str(new_days[-1])[:10] == NEW_END
    assert_array_equal(st["in_fit_window"].values, np.arange(st.sizes["time"]) < old_t)
    # the oracle: every day standardised with the fit's transform, filtered from day 1
    center, scale = panel_standardisation(pair_fit)
    longer = _quiet(prepare_panel, {a: US[a] for a in spec.assets}, start="2006-01-01",
                    end=NEW_END)
    assert_allclose(longer.raw.loc[new_days, list(spec.channels)].values,
                    updated["observed_data"]["raw_features"].values[old_t:], rtol=1e-12)
    z = (longer.raw[list(spec.channels)] - center) / scale
    data = panel_data(spec, z)
    params = panel_params(pair_fit["posterior"].to_dataset(), spec)
    log_init, log_trans, log_lik = evaluate(spec, params, data)
    mean = 0.0
    for s in range(log_lik.shape[0]):
        mean = mean + kernels.filter_probs(log_init, log_trans[s], log_lik[s])[0]
    want = asset_marginals(spec, mean / log_lik.shape[0])
    assert_allclose(st["filtered"].values, want, rtol=0, atol=1e-9)
    # the stored days are untouched; the smoothed ones are not computed for the new days
    assert_array_equal(st["filtered"].values[:old_t], pair_fit["stages"]["filtered"].values)
    assert np.isnan(st["smoothed"].values[old_t:]).all()
    q = st["filtered_quantile"].sel(quantile=0.5).values[old_t:]
    assert ((q >= 0) & (q <= 1)).all()


def test_two_updates_in_a_row_equal_one(pair_fit, updated):
    once = _quiet(update_panel, pair_fit, "us_markets", end="2010-06-30")
    twice = _quiet(update_panel, updated, "us_markets", end="2010-06-30")
    assert twice.attrs["feed_updates"] == 2
    assert_allclose(twice["stages"]["filtered"].values, once["stages"]["filtered"].values,
                    rtol=0, atol=1e-12)
    assert_allclose(twice["feed_state"]["filtered_last"].values,
                    once["feed_state"]["filtered_last"].values, rtol=0, atol=1e-12)


def test_update_refuses_another_series_and_no_new_days(pair_fit):
    swapped = {"sp500": US["sp500"], "ted": US["baa10y"]}  # BAA-10y's file under TED's name
    with pytest.raises(DataError, match=r"ted:level on 2006-01-0\d is .* in the fit"):
        _quiet(update_panel, pair_fit, swapped, end=NEW_END)
    with pytest.raises(ValueError, match="no new days after the fit's last day 2009-06-30"):
        _quiet(update_panel, pair_fit, "us_markets", end="2009-06-30")
    with pytest.raises(ValueError, match=r"lack the fit's asset\(s\) \['ted'\]"):
        _quiet(update_panel, pair_fit, {"sp500": US["sp500"]})


def test_update_export_and_episodes_through_the_cli(pair_fit_path, tmp_path, capsys):
    from stressflow.inference.apps.feed import read_feed
    from stressflow.inference.present.cli import main

    out = tmp_path / "updated.nc"
    assert _quiet(main, ["update", str(pair_fit_path), "us_markets", "--end", NEW_END,
                         "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "day(s) 2009-07-01 .. 2009-12-31" in text and "ted" in text
    assert main(["update", str(pair_fit_path), "us_markets", "--out", str(pair_fit_path)]) == 2
    feed_file = tmp_path / "feed.csv"
    assert _quiet(main, ["export", str(out), "--out", str(feed_file)]) == 0
    feed = read_feed(feed_file)
    late = feed[feed["date"] > "2009-06-30"]
    assert set(late["asset"]) == {"sp500", "ted"} and not late["in_fit_window"].any()
    assert late["p_compulsion"].between(0, 1).all() and late["smoothed_forced_flow"].isna().all()
    assert _quiet(main, ["episodes", str(out)]) == 0


def test_fit_written_without_the_filter_state_updates_the_same(pair_fit, updated):
    import xarray as xr

    groups = {name: node.to_dataset() for name, node in pair_fit.children.items()
              if name != "feed_state"}
    older = xr.DataTree.from_dict({"/": xr.Dataset(attrs=dict(pair_fit.attrs)), **groups})
    again = _quiet(update_panel, older, "us_markets", end=NEW_END)
    assert_allclose(again["stages"]["filtered"].values, updated["stages"]["filtered"].values,
                    rtol=0, atol=1e-12)
