"""The panel (multi-asset) model: data on one calendar, the joint-state evaluator, the graph.

Oracles: the product formula of the coupled transition written out per entry; with no
coupling, the exact factorisation ``log p(y) = sum_a log p_a(y_a)`` into independent one-asset
HMMs; per-channel Gaussian densities from scipy; the PyMC graph against the NumPy evaluator.
Data: the bundled S&P 500, VW, TED and BAA-10y files.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from stressflow.data import DataError, load_dataset
from stressflow.data.panel import PANELS, AssetSource, prepare_panel
from stressflow.models.numerics import kernels
from stressflow.models.panel import PanelSpec, asset_marginals, evaluate, panel_data
from stressflow.models.panel.pymc_model import build_panel_model

try:  # rootdir on sys.path (python -m pytest, or tests/ as a package)
    from tests.panel_fixtures import PAIR_FIT
except ImportError:  # pytest's default rootdir-less "prepend" import of tests/test_*.py
    from panel_fixtures import PAIR_FIT

US = PANELS["us_markets"]


@pytest.fixture(scope="module")
def small_panel():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_panel({n: US[n] for n in ("sp500", "ted", "baa10y")},
                             start="2006-01-01", end="2008-12-31")


def _random_params(spec, seed):
    rng = np.random.default_rng(seed)
    k, c, a = spec.n_stages, len(spec.channels), spec.n_assets
    out = {"mu": rng.normal(size=(k, c)), "sigma": rng.gamma(4.0, 0.3, size=(k, c))}
    out["P"] = (rng.dirichlet(np.ones(k) * 2, size=k) if spec.coupling == "shared"
                else rng.dirichlet(np.ones(k) * 2, size=(a, k)))
    if spec.coupling == "spillover":
        out["spillover"] = rng.normal(0.0, 1.5, size=(a, a)) * (1 - np.eye(a))
    return out


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------


def test_calendar_is_the_union_and_a_missing_day_is_missing_for_that_asset_only():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        panel = prepare_panel({"sp500": US["sp500"], "vw": AssetSource("vw")},
                              start="2008-06-01", end="2008-12-31")
    f = panel.features
    july4 = pd.Timestamp("2008-07-04")  # NYSE closed, Xetra open
    assert july4 in f.index
    assert f.loc[july4, panel.asset_channels("sp500")].isna().all()
    assert f.loc[july4, panel.asset_channels("vw")].notna().all()
    assert panel.report["sp500"]["days_missing"] >= 1
    assert (f.index.day_of_week < 5).all()
    assert_allclose(f.mean().to_numpy(), 0.0, atol=1e-9)
    assert panel.order_channels == {"sp500": "sp500:volatility", "vw": "vw:volatility"}


def test_rate_observables_follow_their_formulas(small_panel):
    ted = load_dataset("ted")["ted_spread_pct"].dropna()
    raw = small_panel.raw
    day = pd.Timestamp("2007-08-20")
    x = ted.loc[:day]
    assert raw.loc[day, "ted:level"] == pytest.approx(x.iloc[-1])
    assert raw.loc[day, "ted:change"] == pytest.approx(x.iloc[-1] - x.iloc[-2])
    rms = np.sqrt(np.mean(np.diff(x.iloc[-6:].to_numpy()) ** 2))
    assert raw.loc[day, "ted:change_vol"] == pytest.approx(np.log(max(rms, 1e-3)))


def test_weekend_rows_are_dropped_and_counted_and_the_input_is_not_modified():
    ted = load_dataset("ted").loc["2006":"2008"]
    extra = pd.DataFrame({"ted_spread_pct": [1.0]}, index=pd.DatetimeIndex(["2007-06-30"]))
    frame = pd.concat([ted, extra]).sort_index()
    before = frame.copy()
    panel = prepare_panel({"ted": AssetSource(frame, "rate", "ted_spread_pct")})
    assert panel.report["ted"]["weekend_rows_dropped"] == 1
    assert pd.Timestamp("2007-06-30") not in panel.features.index
    pd.testing.assert_frame_equal(frame, before)


def test_bad_rate_input_names_the_asset_column_and_date():
    vix = load_dataset("vix").loc["2008"]
    bad = vix.copy()
    bad.loc["2008-03-03", "close"] = 0.0
    with pytest.raises(DataError, match=r"'vix'.*'close'.*2008-03-03"):
        prepare_panel({"vix": AssetSource(bad, "rate", "close", log_level=True)})
    with pytest.raises(DataError, match="'nope' is absent"):
        prepare_panel({"vix": AssetSource(vix, "rate", "nope")})


# ------------------------------------------------------------------------------------------
# spec and evaluator
# ------------------------------------------------------------------------------------------


def test_spec_refuses_what_it_cannot_fit(small_panel):
    with pytest.raises(ValueError, match="joint states"):
        PanelSpec.from_panel(small_panel, n_stages=5)
    with pytest.raises(ValueError, match="coupling"):
        PanelSpec.from_panel(small_panel, coupling="pairwise")
    spec = PanelSpec.from_panel(small_panel)
    with pytest.raises(ValueError, match="order channel"):
        PanelSpec(spec.assets, spec.channels, spec.channel_asset,
                  ("ted:level", *spec.order_channels[1:]))
    assert PanelSpec.from_dict(spec.to_dict()) == spec
    assert spec.pair_names[0] == "ted->sp500"


@pytest.mark.parametrize("coupling", ["spillover", "none", "shared"])
def test_joint_transitions_are_the_product_of_the_assets_moves(small_panel, coupling):
    spec = PanelSpec.from_panel(small_panel, coupling=coupling)
    params = _random_params(spec, 3)
    _, log_trans, _ = evaluate(spec, params, panel_data(spec, small_panel.features))
    assert_allclose(np.exp(log_trans).sum(axis=1), 1.0, atol=1e-12)
    digits, k = spec.joint_digits(), spec.n_stages
    if coupling == "shared":
        assert_allclose(np.exp(log_trans), params["P"], atol=1e-12)
        return
    spill = params.get("spillover", np.zeros((spec.n_assets,) * 2))
    for j_from in range(spec.n_joint):
        for j_to in range(spec.n_joint):
            prob = 1.0
            for a in range(spec.n_assets):
                w = params["P"][a, digits[j_from, a]].copy()
                w[k - 1] *= np.exp(sum(spill[a, b] for b in range(spec.n_assets)
                                       if digits[j_from, b] == k - 1))
                prob *= w[digits[j_to, a]] / w.sum()
            assert np.exp(log_trans[j_from, j_to]) == pytest.approx(prob, rel=1e-12)


def test_emission_is_the_sum_of_per_channel_gaussians(small_panel):
    spec = PanelSpec.from_panel(small_panel)
    params = _random_params(spec, 4)
    _, _, log_lik = evaluate(spec, params, panel_data(spec, small_panel.features))
    y = small_panel.features.to_numpy()
    asset_of = [spec.assets.index(a) for a in spec.channel_asset]
    for t in (0, 200, 700):
        for j, stages in enumerate(spec.joint_digits()):
            ok = np.isfinite(y[t])
            k = stages[asset_of]
            want = stats.norm.logpdf(y[t, ok], params["mu"][k, range(len(k))][ok],
                                     params["sigma"][k, range(len(k))][ok]).sum()
            assert log_lik[t, j] == pytest.approx(want, rel=1e-10)


def test_uncoupled_panel_factorises_into_one_asset_hmms(small_panel):
    spec = PanelSpec.from_panel(small_panel, coupling="none")
    params = _random_params(spec, 5)
    joint = kernels.log_marginal(*evaluate(spec, params, panel_data(spec, small_panel.features)))
    total = 0.0
    for i, asset in enumerate(spec.assets):
        cols = small_panel.asset_channels(asset)
        sub = PanelSpec(assets=(asset,), channels=tuple(cols), channel_asset=(asset,) * len(cols),
                        order_channels=(spec.order_channels[i],))
        idx = [spec.channels.index(c) for c in cols]
        one = {"mu": params["mu"][:, idx], "sigma": params["sigma"][:, idx],
               "P": params["P"][i:i + 1]}
        data = panel_data(sub, small_panel.features[cols])
        total += kernels.log_marginal(*evaluate(sub, one, data))
    assert joint == pytest.approx(total, rel=1e-11)


def test_asset_marginals_sum_over_the_other_assets(small_panel):
    spec = PanelSpec.from_panel(small_panel)
    params = _random_params(spec, 6)
    smoothed = kernels.smooth(*evaluate(spec, params, panel_data(spec, small_panel.features)))[0]
    marg = asset_marginals(spec, smoothed)
    assert marg.shape == (len(small_panel.features), spec.n_assets, spec.n_stages)
    assert_allclose(marg.sum(axis=-1), 1.0, atol=1e-12)
    first = spec.joint_digits()[:, 0] == 1
    assert_allclose(marg[:, 0, 1], smoothed[:, first].sum(axis=1), atol=1e-12)


def test_graph_log_density_matches_the_numpy_evaluator(small_panel):
    spec = PanelSpec.from_panel(small_panel)
    model = build_panel_model(small_panel.features, spec)
    point = model.initial_point()
    outs = model.replace_rvs_by_values([model[n] for n in ("mu", "sigma", "P", "spillover",
                                                           "hmm_loglik")])
    fns = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    mu, sigma, trans, spill, graph = fns(point)
    params = {"mu": mu, "sigma": sigma, "P": trans, "spillover": spill}
    want = kernels.log_marginal(*evaluate(spec, params, panel_data(spec, small_panel.features)))
    assert graph == pytest.approx(want, rel=1e-10)
    assert model.named_vars_to_dims["spillover"] == ("asset", "asset_from")
    assert np.all(np.diff(mu[:, [spec.channels.index(c) for c in spec.order_channels]],
                          axis=0) > 0)


# ------------------------------------------------------------------------------------------
# migration quantities on hand-made paths (exact answers)
# ------------------------------------------------------------------------------------------


def _paths(entries, n_days=60, runs=8):
    """Two-stage paths of assets entering their top stage on the given days for ``runs``."""
    import xarray as xr

    out = np.zeros((1, len(entries[0]), n_days, len(entries)), dtype=np.int8)
    for a, days in enumerate(entries):
        for s, day in enumerate(days):
            if day is not None:
                out[0, s, day:day + runs, a] = 1
    return xr.DataArray(out, dims=("draw", "sample", "time", "asset"),
                        coords={"draw": [0], "time": pd.bdate_range("2008-01-01",
                                                                   periods=n_days),
                                "asset": ["credit", "equity"]},
                        attrs={"stages": ["orderly", "forced_flow"]})


def test_lead_table_and_migration_give_the_hand_counted_answers():
    from stressflow.inference.apps.migration import lead_table, migration_table, onsets

    paths = _paths([[10, 12, 20, 30], [15, 15, 20, None]])
    window = ("2008-01-01", "2008-03-31")
    first = onsets(paths, *window).values[0]
    assert_allclose(first[:, 0], [10, 12, 20, 30])
    assert np.isnan(first[3, 1])
    lead = lead_table(paths, *window).loc[("credit", "equity")]
    assert lead["pr_both"] == 0.75
    assert lead["median_lead_days"] == 3.0  # leads 5, 3, 0
    assert lead["pr_leader_first"] == pytest.approx((2 + 0.5) / 3)
    mig = migration_table(paths, *window, horizons=(4,)).loc[("credit", "equity", 4)]
    assert mig["median"] == pytest.approx(2 / 4)  # within 4 days: paths 2 (3 d) and 3 (0 d)
    # a stress already under way when the window opens is not an onset inside it
    late = onsets(paths, "2008-01-16", "2008-03-31").values[0]
    assert np.isnan(late[0, 0]) and late[2, 0] == pytest.approx(
        np.busday_count("2008-01-16", "2008-01-29"))


# ------------------------------------------------------------------------------------------
# fits: real data end to end, and recovery of a simulated lead
# ------------------------------------------------------------------------------------------


def test_fit_panel_on_real_data_is_labelled_and_reproducible(pair_panel, pair_fit,
                                                             pair_fit_path, capsys):
    from stressflow.inference.fitting.panel_fit import fit_panel
    from stressflow.inference.present.cli import main

    again = fit_panel(pair_panel, **PAIR_FIT, store_draws=True)  # the API, the CLI's seed
    for name in ("smoothed", "filtered"):  # every draw's probabilities average to the stored
        per_draw = again["stage_draws"][name]
        assert per_draw.dims == ("chain", "draw", "time", "asset", "stage")
        assert_allclose(per_draw.astype("float64").mean(("chain", "draw")).values,
                        pair_fit["stages"][name].values,
                        rtol=0, atol=1e-6)
    post = pair_fit["posterior"]
    assert post["spillover"].dims == ("chain", "draw", "asset", "asset_from")
    assert post["P"].dims == ("chain", "draw", "asset", "stage_from", "stage_to")
    np.testing.assert_array_equal(post["spillover"].values, again["posterior"]["spillover"].values)
    sm = pair_fit["stages"]["smoothed"]
    assert sm.dims == ("time", "asset", "stage")
    np.testing.assert_array_equal(sm.values, again["stages"]["smoothed"].values)
    assert_allclose(sm.sum("stage").values, 1.0, atol=1e-9)
    assert pair_fit["log_likelihood"]["y"].dims == ("chain", "draw", "time")
    # both markets in their top stage through the Lehman weeks, neither in calm 2006 H1
    top = sm.sel(stage="forced_flow")
    assert (top.sel(time=slice("2008-09-29", "2008-10-31")).mean("time") > 0.9).all()
    assert (top.sel(time=slice("2006-01-01", "2006-04-30")).mean("time") < 0.2).all()
    # K = 2: the margin-or-worse group is forced flow alone, so its quantiles are forced flow's
    np.testing.assert_array_equal(
        pair_fit["stages"]["filtered_margin_or_worse_quantile"].values,
        pair_fit["stages"]["filtered_quantile"].sel(stage="forced_flow").values)
    assert main(["panel", "lead", str(pair_fit_path), "--window", "2007-06-01", "2008-12-31",
                 "--draws", "20", "--paths", "2"]) == 0
    out = capsys.readouterr().out
    assert "lead table 2007-06-01..2008-12-31" in out and "ted->sp500" not in out
    assert "sp500" in out and "pr_leader_first" in out


def test_panel_fit_asset_view_episodes_and_catalogue(pair_fit):
    from stressflow.inference.apps.migration import sample_asset_paths
    from stressflow.inference.apps.panel_assets import (
        asset_paths,
        asset_view,
        panel_catalogue,
        panel_episodes,
        tape_assets,
    )

    assert tape_assets(pair_fit) == ["sp500"]
    view = asset_view(pair_fit, "sp500")
    np.testing.assert_array_equal(view["stages"]["smoothed"].values,
                                  pair_fit["stages"]["smoothed"].sel(asset="sp500").values)
    assert list(view["observed_data"]["features"]["feature"].values) == [
        c.split(":")[1] for c in pair_fit["observed_data"]["channel"].values
        if c.startswith("sp500:")]
    close = view["observed_data"]["close"].to_series()
    level = pair_fit["observed_data"]["level"].sel(asset="sp500").to_series()
    assert close.notna().all() and level.isna().any()  # panel days without an S&P 500 row
    assert_allclose(close[level.notna()], level.dropna())
    with pytest.raises(ValueError, match="asset 'gme' is not in this panel fit"):
        asset_view(pair_fit, "gme")
    paths = sample_asset_paths(pair_fit, n_draws=30, paths_per_draw=4, seed=1)
    table = panel_episodes(pair_fit, paths=paths)
    assert table.index.names == ["asset", "episode"]
    assert set(table.index.get_level_values("asset")) == {"sp500"}
    # oracle: p_compulsion of each episode straight from the joint paths' sp500 coordinate
    one = asset_paths(paths, "sp500")
    assert one.sizes == {"sample": 120, "time": pair_fit["stages"].sizes["time"]}
    times = pd.DatetimeIndex(pair_fit["stages"]["time"].values)
    observed = pair_fit["stages"]["observed"].sel(asset="sp500").values > 0
    raw = paths.sel(asset="sp500").values.reshape(120, -1)
    for _, ep in table.iterrows():
        days = np.flatnonzero((times >= ep["start"]) & (times <= ep["end"]) & observed)
        assert ep["n_days"] == days.size
        hand = ((raw[:, days] == 1).sum(axis=1) >= 0.5 * days.size).mean()
        assert ep["p_compulsion"] == pytest.approx(hand)
    cat = panel_catalogue(pair_fit, paths=paths)
    lehman = cat.loc[("sp500", "Lehman / GFC 2008")]
    assert lehman["expected"] == "F-" and lehman["p_compulsion"] > 0.9
    assert "Quant quake 2007" in cat.index.get_level_values("episode")


def test_panel_feed_export_and_read_back(pair_fit, tmp_path):
    from stressflow.inference.apps.feed import PANEL_FEED_SCHEMA, export, read_feed
    from stressflow.inference.apps.panel_assets import panel_feed

    frame = panel_feed(pair_fit)
    st = pair_fit["stages"]
    assert list(frame.columns) == [c.name for c in PANEL_FEED_SCHEMA]
    assert len(frame) == st.sizes["time"] * st.sizes["asset"]
    assert list(frame["asset"].iloc[:2]) == ["sp500", "ted"]
    ted = frame[frame["asset"] == "ted"]
    np.testing.assert_array_equal(ted["p_compulsion"].to_numpy(),
                                  st["filtered"].sel(asset="ted", stage="forced_flow").values)
    np.testing.assert_array_equal(ted["smoothed_forced_flow"].to_numpy(),
                                  st["smoothed"].sel(asset="ted", stage="forced_flow").values)
    assert (ted["filtered_margin_pressure"] == 0).all() and ted["in_fit_window"].all()
    q95 = st["filtered_quantile"].sel(asset="ted", stage="forced_flow", quantile=0.95).values
    np.testing.assert_array_equal(ted["p_compulsion_q95"].to_numpy(), q95)
    for name in ("feed.csv", "feed.parquet"):
        out = export(pair_fit, tmp_path / name, format=name.split(".")[1])
        pd.testing.assert_frame_equal(read_feed(out), frame)


def test_panel_fit_through_the_cli(pair_fit_path, tmp_path, capsys):
    from stressflow.inference.present.cli import main

    assert main(["summary", str(pair_fit_path)]) == 0
    out = capsys.readouterr().out
    assert "panel fit: assets ['sp500', 'ted']" in out and "max R-hat" in out
    assert "ted" in out and "spillover" in out
    assert main(["episodes", str(pair_fit_path), "--n-draws", "10", "--paths-per-draw",
                 "2"]) == 0
    out = capsys.readouterr().out
    assert "Lehman / GFC 2008" in out and "stress regime" in out
    png = tmp_path / "panel.png"
    assert main(["plot", str(pair_fit_path), "--out", str(png), "--window", "2007-01-01",
                 "2008-12-31", "--n-draws", "10"]) == 0
    assert png.stat().st_size > 10_000
    assert main(["export", str(pair_fit_path), "--out", str(tmp_path / "f.csv")]) == 0
    assert "rows (date x asset)" in capsys.readouterr().out
    assert main(["plot", str(pair_fit_path), "--out", str(png), "--kind", "transitions"]) == 1
    assert main(["update", str(pair_fit_path), str(png), "--out", str(tmp_path / "u.nc")]) == 1
    err = capsys.readouterr().err
    assert "one-asset fits" in err and "is not a bundled panel" in err
    # options of the one-asset model are refused for a panel dataset, and vice versa
    assert main(["fit", "--dataset", "us_markets", "--model", "base", "--out",
                 str(tmp_path / "x.nc")]) == 2
    assert main(["fit", "--dataset", "sp500", "--coupling", "none", "--out",
                 str(tmp_path / "x.nc")]) == 2
    assert main(["fit", "--dataset", "us_markets", "--assets", "gme", "--out",
                 str(tmp_path / "x.nc")]) == 1
    err = capsys.readouterr().err
    assert "--model describe(s) a one-asset model" in err
    assert "--coupling appl(ies) to a panel dataset" in err
    assert "asset(s) ['gme'] not in panel 'us_markets'" in err


def test_simulated_one_way_spillover_is_recovered(pair_panel):
    from stressflow.data.panel import PanelData
    from stressflow.inference.fitting.panel_fit import fit_panel
    from stressflow.models.panel.simulate import simulate_panel

    spec = PanelSpec.from_panel(pair_panel)
    c = len(spec.channels)
    truth = {"mu": np.array([[-0.6] * c, [1.0] * c]), "sigma": np.array([[0.6] * c, [1.2] * c]),
             "P": np.array([[[0.99, 0.01], [0.05, 0.95]]] * 2),
             "spillover": np.array([[0.0, 0.0], [3.0, 0.0]])}  # sp500's stress raises ted's
    y, _ = simulate_panel(spec, truth, 2000, seed=11)
    panel = PanelData.from_features(y, pair_panel.order_channels)
    fit = fit_panel(panel, chains=2, draws=300, tune=300, seed=0)
    q = fit["posterior"]["spillover"].quantile([0.01, 0.99], ("chain", "draw"))
    lead = q.sel(asset="ted", asset_from="sp500").values
    back = q.sel(asset="sp500", asset_from="ted").values
    assert lead[0] < 3.0 < lead[1] and lead[0] > 0.5  # 98% interval: covers the truth, not 0
    assert back[0] < 0.0 < back[1]  # the absent direction covers 0
