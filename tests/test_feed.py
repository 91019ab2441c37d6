"""The risk feed: filtered probabilities and update without refit (export, save/load and the
command line: ``test_feed_export.py``; forecasts: ``test_forecast.py``).

One small real fit (S&P 500 2006-2008, 2 chains x 100 draws) is shared by the tests that need
real data; others use a fit-shaped tree built from known parameters (no MCMC).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import (
    SIM_MU,
    SIM_P,
    SIM_SIGMA,
    draw_terms,
    make_prepared,
    simulate_stage_hmm,
)
from fake_fit import fake_fit
from feed_fixtures import FIT_END, FIT_START
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.data import DataError, FeatureTransform, prepare
from stressflow.inference import schema
from stressflow.inference.apps.feed import (
    FEED_SCHEMA,
    feed,
    update,
)
from stressflow.inference.postprocess.stages import stage_probabilities
from stressflow.models import dims

pytestmark = pytest.mark.filterwarnings(
    "ignore::stressflow.data.DataWarning", "ignore::stressflow.inference.FitWarning"
)

K = len(dims.LADDER)


# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_fit():
    """Fit-shaped tree from known simulation parameters on 400 simulated days."""
    features, _ = simulate_stage_hmm(400, seed=11, n_missing=6)
    return fake_fit(make_prepared(features), SIM_MU, SIM_SIGMA, SIM_P, n_draws=6, seed=3)


def _transform(fit):
    return FeatureTransform.from_dict(json.loads(fit.attrs["transform"]))


def _draws(fit):
    post = fit["posterior"]

    def flat(name, tail):
        da = post[name].transpose(dims.CHAIN, dims.DRAW, *tail)
        return da.values.reshape((-1, *da.shape[2:]))

    params = {"mu": flat("mu", (dims.STAGE, dims.FEATURE)),
              "sigma": flat("sigma", (dims.STAGE, dims.FEATURE)),
              "P": flat("P", (dims.STAGE_FROM, dims.STAGE_TO))}
    chain_of_draw = np.repeat(np.arange(post.sizes[dims.CHAIN]), post.sizes[dims.DRAW])
    return params, chain_of_draw


def _stage_probabilities(features, params, chain_of_draw, spec, **kwargs):
    """Stage probabilities of ``features`` under the draws ``params`` of the model ``spec``."""
    values = np.asarray(features, dtype=np.float64)
    return stage_probabilities(draw_terms(values, params, spec), len(chain_of_draw),
                               (values.shape[0], spec.n_stages), chain_of_draw, **kwargs)


# --------------------------------------------------------------------------------------------
# update = filtering the whole series; observables = prepare on the whole series
# --------------------------------------------------------------------------------------------


def test_update_equals_filtering_the_whole_series(real_fit, updated):
    full = prepare("sp500", start=FIT_START, end="2009-06-30", transform=_transform(real_fit))
    stored = updated["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE)
    assert_array_equal(stored[dims.TIME].values, full.features.index.values)
    assert_array_equal(np.isnan(stored.values), full.features.isna().to_numpy())
    assert_allclose(stored.values, full.features.to_numpy(), rtol=0, atol=1e-12)
    assert_allclose(updated["observed_data"]["raw_features"].values, full.raw.to_numpy(),
                    rtol=0, atol=1e-12)
    assert_array_equal(updated["observed_data"]["volume"].values, full.prices["volume"])

    params, chain_of_draw = _draws(real_fit)
    spec = schema.read_spec(real_fit)
    whole = _stage_probabilities(full.features.to_numpy(), params, chain_of_draw, spec,
                                 quantiles=dims.DEFAULT_QUANTILES, filtered_groups={"g": [2, 3]})
    st = updated["stages"]
    n_fit = real_fit["stages"].sizes[dims.TIME]
    assert st.sizes[dims.TIME] > n_fit + 100
    assert_allclose(st["filtered"].values, whole.filtered_mean, rtol=0, atol=1e-12)
    assert_allclose(st["filtered_quantile"].values, whole.filtered_q, rtol=0, atol=1e-6)
    assert_allclose(st["filtered_margin_or_worse_quantile"].values, whole.filtered_group_q["g"],
                    rtol=0, atol=1e-6)
    state = updated["feed_state"]["filtered_last"].values.reshape(-1, spec.n_stages)
    assert_allclose(state, whole.filtered_last, rtol=0, atol=1e-12)
    assert updated["feed_state"]["filtered_last"].attrs["date"] == "2009-06-30"


def test_update_keeps_everything_stored_and_labels_new_days(real_fit, updated, prices):
    before = real_fit.copy(deep=True)
    again = update(real_fit, prices.loc["2009-01-01":"2009-01-30"])
    xr.testing.assert_identical(real_fit.to_dataset(), before.to_dataset())  # input untouched
    for name in real_fit.children:
        xr.testing.assert_identical(real_fit[name].to_dataset(), before[name].to_dataset())
    n_fit = real_fit["stages"].sizes[dims.TIME]
    for tree in (updated, again):
        for group in ("stages", "observed_data"):
            old = real_fit[group].to_dataset()
            new = tree[group].to_dataset().isel({dims.TIME: slice(0, n_fit)})
            for name, da in old.data_vars.items():
                assert_array_equal(new[name].values, da.values, err_msg=f"{group}/{name}")
        for group in ("posterior", "sample_stats", "log_likelihood"):
            if group in real_fit.children:
                xr.testing.assert_identical(tree[group].to_dataset(),
                                            real_fit[group].to_dataset())
        for key, value in real_fit.attrs.items():
            assert tree.attrs[key] == value, key
        st = tree["stages"].isel({dims.TIME: slice(n_fit, None)})
        assert np.isnan(st["smoothed"].values).all()
        assert np.isnan(st["smoothed_quantile"].values).all()
        assert (st["viterbi"].values == "").all()
        assert not st["in_fit_window"].values.any()
        assert real_fit["stages"]["in_fit_window"].values.all()
        assert_allclose(st["filtered"].sum(dims.STAGE).values, 1.0, atol=1e-12)
    assert again.attrs["feed_end"] == "2009-01-30" and again.attrs["feed_updates"] == 1
    twice = update(again, prices.loc["2009-02-01":"2009-06-30"])
    assert twice.attrs["feed_updates"] == 2
    assert_allclose(twice["stages"]["filtered"].values, updated["stages"]["filtered"].values,
                    rtol=0, atol=1e-12)


def test_daily_updates_equal_one_batch(real_fit, prices):
    rows = prices.loc["2009-01-01":"2009-01-31"]
    tree = real_fit
    t0 = time.perf_counter()
    for i in range(len(rows)):
        tree = update(tree, rows.iloc[i:i + 1])
    per_day = (time.perf_counter() - t0) / len(rows)
    batch = update(real_fit, rows)
    assert_allclose(tree["stages"]["filtered"].values, batch["stages"]["filtered"].values,
                    rtol=0, atol=1e-12)
    assert_array_equal(tree["observed_data"]["features"].values,
                       batch["observed_data"]["features"].values)
    assert tree.attrs["feed_updates"] == len(rows)
    assert per_day < 2.0, f"{per_day:.3f} s per daily update"


# --------------------------------------------------------------------------------------------
# no look-ahead
# --------------------------------------------------------------------------------------------


def test_no_look_ahead(real_fit, prices):
    cut = pd.Timestamp("2009-03-16")
    rows = prices.loc["2009-01-01":"2009-04-30"]
    changed = rows.copy()
    after = changed.index > cut
    rng = np.random.default_rng(0)
    factor = np.exp(rng.normal(0.0, 0.05, after.sum()))
    for column in ("open", "high", "low", "close"):
        changed.loc[after, column] = changed.loc[after, column] * factor
    changed.loc[after, "high"] *= 1.03
    changed.loc[after, "volume"] *= 4.0
    a = feed(update(real_fit, rows))
    b = feed(update(real_fit, changed))
    upto = (a["date"] <= cut).to_numpy()
    # every filtered quantity at or before the cut is unchanged ...
    pd.testing.assert_frame_equal(a[upto], b[upto], check_exact=False, rtol=0, atol=1e-12)
    # ... while later days did change (the test can fail): some stage's filtered probability
    filtered = [f"filtered_{k}" for k in dims.STAGES]
    assert np.abs(a.loc[~upto, filtered].to_numpy()
                  - b.loc[~upto, filtered].to_numpy()).max() > 1e-3
    # the observables at or before the cut do not depend on later rows
    fa = update(real_fit, rows)["observed_data"]["features"].sel({dims.TIME: slice(None, cut)})
    fb = update(real_fit, changed)["observed_data"]["features"].sel({dims.TIME: slice(None, cut)})
    assert_array_equal(fa.values, fb.values)


def test_no_look_ahead_inside_the_fit_window_with_fixed_draws(real_fit):
    """With the posterior draws held fixed, changing observables after t leaves the filtered
    probabilities up to t unchanged (parameter estimation is the only look-ahead inside a fit
    window; the backtest removes it)."""
    features = real_fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE)
    values = features.values.copy()
    cut = 400
    changed = values.copy()
    changed[cut + 1:] = np.random.default_rng(1).normal(0, 2, changed[cut + 1:].shape)
    params, chain_of_draw = _draws(real_fit)
    spec = schema.read_spec(real_fit)
    out = [_stage_probabilities(v, params, chain_of_draw, spec) for v in (values, changed)]
    assert_allclose(out[0].filtered_mean[:cut + 1], out[1].filtered_mean[:cut + 1],
                    rtol=0, atol=1e-12)
    assert_allclose(out[0].filtered_mean, real_fit["stages"]["filtered"].values,
                    rtol=0, atol=1e-12)
    assert np.abs(out[0].filtered_mean[cut + 1:] - out[1].filtered_mean[cut + 1:]).max() > 0.1


# --------------------------------------------------------------------------------------------
# bad new rows
# --------------------------------------------------------------------------------------------


def test_bad_new_rows_are_refused_with_clear_errors(real_fit, prices):
    rows = prices.loc["2009-01-01":"2009-01-31"]
    with pytest.raises(DataError, match="dates are not sorted: 2009-01-05"):
        update(real_fit, rows.iloc[[0, 2, 1, 3]])
    with pytest.raises(DataError, match="duplicate date 2009-01-05"):
        update(real_fit, rows.iloc[[0, 1, 1, 2]])
    bad = rows.copy()
    bad.loc["2009-01-14", "low"] = -5.0
    with pytest.raises(DataError, match=r"column 'low' has a non-positive price .* 2009-01-14"):
        update(real_fit, bad)
    bad = rows.copy()
    bad.loc["2009-01-15", "high"] = bad.loc["2009-01-15", "low"] / 2
    with pytest.raises(DataError, match="high < low on 2009-01-15"):
        update(real_fit, bad)
    bad = rows.copy().astype({"close": object})
    bad.loc["2009-01-16", "close"] = "n/a"
    with pytest.raises(DataError, match=r"column 'close' has a non-numeric value 'n/a' on "
                                        r"2009-01-16"):
        update(real_fit, bad)
    with pytest.raises(DataError, match=r"missing required column\(s\) \['volume'\]"):
        update(real_fit, rows.drop(columns="volume"))
    with pytest.raises(DataError, match=r"the data have no rows"):
        update(real_fit, rows.iloc[:0])


def test_update_refuses_fits_without_state_or_prices(sim_fit, real_fit, prices):
    rows = prices.loc["2009-01-01":"2009-01-31"]
    with pytest.raises(ValueError, match="stores no"):  # fake fit: no high/low/volume rows
        update(sim_fit, rows)
    old = real_fit.copy()
    old["posterior"] = old["posterior"].to_dataset().drop_vars("filtered_last")
    old.attrs["schema_version"] = 1
    with pytest.raises(ValueError, match="schema 2"):
        update(old, rows)
    with pytest.raises(ValueError, match="schema 2"):
        feed(old)


# --------------------------------------------------------------------------------------------
# the feed and its export
# --------------------------------------------------------------------------------------------


def test_feed_columns_are_the_stored_probabilities(updated):
    f = feed(updated)
    st = updated["stages"]
    assert list(f.columns) == [c.name for c in FEED_SCHEMA]
    assert_array_equal(f["date"].to_numpy(), st[dims.TIME].values.astype("datetime64[ns]"))
    assert list(st[dims.STAGE].values) == list(dims.STAGES)  # the default: five stages
    for j, k in enumerate(dims.STAGES):
        assert_array_equal(f[f"filtered_{k}"], st["filtered"].values[:, j])
        assert_array_equal(f[f"filtered_{k}_q05"], st["filtered_quantile"].values[0, :, j])
        assert_array_equal(f[f"filtered_{k}_q95"], st["filtered_quantile"].values[2, :, j])
    assert_array_equal(f["p_compulsion"], f["filtered_forced_flow"])
    assert_array_equal(f["p_compulsion_q95"], f["filtered_forced_flow_q95"])
    assert_allclose(f["p_margin_or_worse"],
                    f["filtered_margin_pressure"] + f["filtered_forced_flow"], atol=1e-15)
    assert (f["p_margin_or_worse_q05"] <= f["p_margin_or_worse_q95"]).all()
    # the group's interval is the stored quantile of the per-draw sums, not the sum of the
    # stages' quantiles (test_update_equals_filtering_the_whole_series checks the stored one)
    group_q = st["filtered_margin_or_worse_quantile"].transpose(dims.QUANTILE, dims.TIME).values
    assert_array_equal(f["p_margin_or_worse_q05"], group_q[0])
    assert_array_equal(f["p_margin_or_worse_q95"], group_q[2])
    summed = f["filtered_margin_pressure_q95"] + f["filtered_forced_flow_q95"]
    assert (summed != f["p_margin_or_worse_q95"]).any()
    in_fit = f["in_fit_window"].to_numpy()
    assert in_fit[:10].all() and not in_fit[-10:].any()
    assert f.loc[in_fit, "smoothed_orderly"].notna().all()
    assert f.loc[~in_fit, [f"smoothed_{k}" for k in dims.STAGES]].isna().all().all()
    assert (f["fit_data_end"] == pd.Timestamp(FIT_END)).all()
    assert (f["observed"] == (f["n_observed"] > 0)).all()
    probs = f[[f"filtered_{k}" for k in dims.STAGES]].sum(axis=1)
    assert_allclose(probs, 1.0, atol=1e-12)


def test_feed_of_a_four_stage_fit_gives_discretionary_probability_zero(sim_fit):
    f = feed(sim_fit)
    assert list(f.columns) == [c.name for c in FEED_SCHEMA]
    assert (f["filtered_discretionary"] == 0).all() and (f["smoothed_discretionary"] == 0).all()
    st = sim_fit["stages"]
    for j, k in enumerate(dims.LADDER):
        assert_array_equal(f[f"filtered_{k}"], st["filtered"].values[:, j])
    assert_allclose(f[[f"filtered_{k}" for k in dims.STAGES]].sum(axis=1), 1.0, atol=1e-12)
