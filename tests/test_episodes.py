"""Episodes, compulsion scores and the crisis catalogue (stressflow.inference.apps.episodes,
stressflow.inference.apps.catalogue)."""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import make_prepared
from fake_fit import fake_fit, with_close
from stressflow.inference.apps import catalogue as cat_mod
from stressflow.inference.apps.catalogue import agreement, load_catalogue, score_catalogue
from stressflow.inference.apps.episodes import (
    LABELS,
    compulsion_scores,
    detect_episodes,
    episodes,
    label_episode,
    window_episodes,
)
from stressflow.inference.present.commands import register_episodes
from stressflow.models import dims

K = len(dims.LADDER)
FF, MP = K - 1, K - 2


# ------------------------------------------------------------------------------------------
# Detection on hand-made prices
# ------------------------------------------------------------------------------------------


def _series(values, start="2020-01-01"):
    return pd.Series(values, index=pd.bdate_range(start, periods=len(values)), dtype=float)


def test_detect_episodes_exact_dates():
    # 100 up to 120 (day 4), down to 96 (day 8, -20%), up to 110 (day 11, +14.6%),
    # small wiggle, down to 98 (day 14, -10.9%): the last selloff is not yet confirmed
    close = _series([100, 105, 110, 115, 120, 112, 104, 100, 96, 100, 106, 110, 108, 100, 98])
    d = close.index
    table = detect_episodes(close, drawdown=0.10, runup=0.10)
    assert list(table["direction"]) == ["rally", "selloff", "rally", "selloff"]
    assert list(table["start"]) == [d[0], d[4], d[8], d[11]]
    assert list(table["extreme"]) == [d[4], d[8], d[11], d[14]]
    assert list(table["end"]) == list(table["extreme"])
    np.testing.assert_allclose(table["move"], [0.2, 96 / 120 - 1, 110 / 96 - 1, 98 / 110 - 1])
    assert list(table["confirmed"]) == [True, True, True, False]
    # a 15% threshold keeps only the 20% fall; the first rise (+20%) also qualifies
    wide = detect_episodes(close, drawdown=0.15, runup=0.15)
    assert list(wide["direction"]) == ["rally", "selloff"]
    assert list(wide["start"]) == [d[0], d[4]] and list(wide["extreme"]) == [d[4], d[8]]


def test_detect_episodes_asymmetric_thresholds_and_quiet_series():
    close = _series([100, 95, 91, 93, 97, 101, 104, 99])
    d = close.index
    # -9% fall is below a 10% drawdown threshold; the +14.3% rise from 91 passes a 5% run-up
    table = detect_episodes(close, drawdown=0.10, runup=0.05)
    assert list(table["direction"]) == ["rally"]
    assert table["start"].iloc[0] == d[2] and table["extreme"].iloc[0] == d[6]
    assert not table["confirmed"].iloc[0]
    assert detect_episodes(_series([100, 101, 99, 100]), drawdown=0.1, runup=0.1).empty


def test_detect_episodes_rejects_bad_input_and_keeps_input():
    close = _series([100, 90, 80, 95])
    before = close.copy()
    detect_episodes(close)
    pd.testing.assert_series_equal(close, before)
    with pytest.raises(ValueError, match="finite and > 0"):
        detect_episodes(_series([100, -1, 80]))
    with pytest.raises(ValueError, match="DatetimeIndex"):
        detect_episodes(pd.Series([1.0, 2.0]))
    for name, value in (("drawdown", -0.1), ("drawdown", 1.0), ("drawdown", float("nan")),
                        ("drawdown", True), ("runup", 0.0), ("runup", 10.0)):
        with pytest.raises(ValueError, match=rf"^{name} must be a fraction in \(0, "):
            detect_episodes(close, **{name: value})
    assert detect_episodes(close, drawdown=np.float32(0.1)).shape[0] >= 1  # NumPy floats count


def test_window_episodes_direction_extreme_and_errors():
    close = _series([100, 98, 60, 70, 97, 99, 200, 150])
    d = close.index
    table = window_episodes(close, [(d[0], d[4]), ("2020-01-07", "2020-01-12")])
    assert list(table["direction"]) == ["selloff", "rally"]
    assert table["extreme"].iloc[0] == d[2]
    assert table["move"].iloc[0] == pytest.approx(-0.4)
    assert table["return"].iloc[0] == pytest.approx(-0.03)
    assert table["start"].iloc[1] == d[4] and table["end"].iloc[1] == d[7]  # snapped to data
    assert table["extreme"].iloc[1] == d[6]
    frame = pd.DataFrame({"episode": ["a"], "start": [d[1]], "end": [d[3]]})
    named = window_episodes(close, frame)
    assert named["episode"].iloc[0] == "a" and list(frame.columns) == ["episode", "start", "end"]
    with pytest.raises(ValueError, match="no trading day"):
        window_episodes(close, [("2019-01-01", "2019-02-01")])
    with pytest.raises(ValueError, match="ends before it starts"):
        window_episodes(close, [(d[3], d[1])])


# ------------------------------------------------------------------------------------------
# Scores on hand-made paths
# ------------------------------------------------------------------------------------------


def test_compulsion_scores_count_exactly():
    # 4 paths, 2 draws; episode = columns 3..6 (4 days), min_share 0.5 -> >= 2 FF days
    o = 0
    paths = np.array([
        [o, MP, MP, FF, FF, o, o, o],   # 2 FF days -> event; FF spell starts at 3, MP before
        [o, o, o, FF, o, o, o, o],      # 1 FF day -> no event; no MP in the lead-in
        [o, o, o, MP, MP, MP, FF, o],   # MP-or-worse on all 4 days; 1 FF day; MP lead-in
        [FF, FF, FF, FF, FF, FF, FF, o],  # FF spell starts on day 0: no lead-in exists
    ], dtype=np.int8)
    draw = np.array([0, 0, 1, 1])
    s = compulsion_scores(paths, draw, np.arange(3, 7), min_share=0.5, lead_in=2)
    assert s["p_compulsion"] == pytest.approx(2 / 4)
    assert s["p_margin_pressure_or_worse"] == pytest.approx(3 / 4)
    assert s["forced_share"] == pytest.approx((2 + 1 + 1 + 4) / 16)
    assert s["p_any_forced"] == 1.0
    assert s["p_margin_lead_in"] == pytest.approx(2 / 4)
    # per-draw probabilities are (0.5, 0.5) for compulsion
    assert s["p_compulsion_q05"] == s["p_compulsion_q95"] == pytest.approx(0.5)
    # direction is not part of the definition: the same paths give the same numbers
    assert compulsion_scores(paths, draw, np.arange(3, 7), lead_in=2) == s
    none = compulsion_scores(np.zeros((3, 8), np.int8), np.arange(3), np.arange(2, 4))
    assert none["p_compulsion"] == 0.0 and np.isnan(none["p_margin_lead_in"])


def test_labels_and_agreement():
    assert label_episode("selloff", 0.9) == "forced selling"
    assert label_episode("rally", 0.7) == "short covering"
    assert label_episode("selloff", 0.3) == "discretionary de-risking"
    assert label_episode("rally", 0.1) == "discretionary rally"
    assert label_episode("rally", 0.5) == "undetermined"
    assert label_episode("rally", 0.5, hi=0.5) == "short covering"
    with pytest.raises(ValueError, match="direction must be 'selloff' or 'rally', got 'sideways'"):
        label_episode("sideways", 0.5)
    assert agreement("F-", 0.8) == "yes" and agreement("F+", 0.5) == "no"
    assert agreement("D", 0.2) == "yes" and agreement("D", 0.9) == "no"
    assert agreement("M", 0.9) == "n/a" and agreement("F-", float("nan")) == "n/a"


# ------------------------------------------------------------------------------------------
# A planted forced rally and a planted discretionary selloff (known-parameter fake fit)
# ------------------------------------------------------------------------------------------

# stage means (spread, volatility, volume, impact): fragile = heavy volume at normal impact and
# moderate volatility; forced_flow = extreme volatility, wide spreads, high impact
PLANT_MU = np.array([
    [-1.0, -1.5, 0.0, -0.5],
    [0.0, -0.3, 1.5, -0.2],
    [0.8, 0.7, 0.4, 0.8],
    [1.8, 2.0, 1.0, 2.2],
])
PLANT_SIGMA = np.full((K, 4), 0.4)
PLANT_P = np.full((K, K), 0.01) + np.eye(K) * 0.96


def _planted():
    """Stages: 0-99 orderly (flat), 100-129 fragile (-0.6%/day selloff), 130-199 orderly
    (+0.2%/day), 200-229 margin pressure (-0.4%/day), 230-249 forced flow (+1.5%/day rally),
    250-399 orderly (-0.15%/day)."""
    segments = [(100, 0, 0.0003), (30, 1, -0.006), (70, 0, 0.002), (30, 2, -0.004),
                (20, 3, 0.015), (150, 0, -0.0015)]
    rng = np.random.default_rng(42)
    stages = np.concatenate([np.full(n, k) for n, k, _ in segments])
    drift = np.concatenate([np.full(n, g) for n, _, g in segments])
    close = 100 * np.exp(np.cumsum(drift + 0.0003 * rng.standard_normal(len(drift))))
    y = PLANT_MU[stages] + 0.4 * rng.standard_normal((len(stages), 4))
    index = pd.bdate_range("2010-01-01", periods=len(stages), name=dims.TIME)
    features = pd.DataFrame(y, index=index,
                            columns=pd.Index(list(dims.FEATURES), name=dims.FEATURE))
    return with_close(make_prepared(features), close), index


@pytest.fixture(scope="module")
def planted():
    prepared, index = _planted()
    fit = fake_fit(prepared, PLANT_MU, PLANT_SIGMA, PLANT_P, n_chains=2, n_draws=20, seed=1)
    return fit, index


def test_planted_forced_rally_scores_high_and_discretionary_selloff_low(planted):
    fit, index = planted
    table = episodes(fit, n_draws=40, paths_per_draw=10, seed=3)
    assert table.index.name == "episode"
    assert set(table["label"]) <= set(LABELS)
    rally = table[table["extreme"] == index[249]]
    selloff = table[table["extreme"] == index[129]]
    assert len(rally) == 1 and len(selloff) == 1
    rally, selloff = rally.iloc[0], selloff.iloc[0]
    assert rally["direction"] == "rally" and rally["start"] == index[229]
    assert selloff["direction"] == "selloff"
    assert rally["p_compulsion"] >= 0.9 and rally["label"] == "short covering"
    assert rally["p_compulsion_q05"] >= 0.7
    assert selloff["p_compulsion"] <= 0.1 and selloff["label"] == "discretionary de-risking"
    assert selloff["p_margin_pressure_or_worse"] <= 0.1
    # heavy volume at normal impact in the selloff; high impact in the forced rally
    assert selloff["volume_rel"] > 1.5 and 0.5 < selloff["impact_rel"] < 1.5
    assert rally["impact_rel"] > 3
    # the forced spell (230-249) followed margin pressure (200-229): lead-in present
    assert rally["p_margin_lead_in"] >= 0.9
    # same seed, same table; the fit is not modified
    again = episodes(fit, n_draws=40, paths_per_draw=10, seed=3)
    pd.testing.assert_frame_equal(table, again)


def test_bad_options_are_refused_before_any_episode_is_scored(planted, monkeypatch):
    """Label thresholds, min_share and lead_in are checked before the path sampling, so a
    wrong option is an error even when there is no episode to score (they used to be checked
    only while scoring one)."""
    import stressflow.inference.postprocess.paths as paths_mod

    fit, _ = planted

    def no_sampling(*args, **kwargs):
        raise AssertionError("paths sampled")

    monkeypatch.setattr(paths_mod, "sample_stage_paths", no_sampling)
    with pytest.raises(AssertionError, match="paths sampled"):  # valid options get that far
        episodes(fit, windows=[])
    for kwargs, match in (({"hi": 0.2, "lo": 0.8}, r"need 0 <= lo < hi <= 1, got lo=0.8, hi=0.2"),
                          ({"min_share": 0.0}, r"min_share must be in \(0, 1\], got 0.0"),
                          ({"lead_in": True}, r"lead_in must be an integer >= 0, got True")):
        with pytest.raises(ValueError, match=match):
            episodes(fit, windows=[], **kwargs)


def test_user_windows_on_planted_fit(planted):
    fit, index = planted
    windows = pd.DataFrame({"episode": ["sell", "squeeze"],
                            "start": [index[100], index[230]], "end": [index[129], index[249]]})
    table = episodes(fit, windows=windows, n_draws=20, paths_per_draw=5)
    assert list(table["direction"]) == ["selloff", "rally"]
    assert list(table["label"]) == ["discretionary de-risking", "short covering"]
    assert list(table["n_days"]) == [30, 20]


# ------------------------------------------------------------------------------------------
# The catalogue
# ------------------------------------------------------------------------------------------


def test_catalogue_loads_and_every_row_is_valid():
    from stressflow.data.bundled import DATASETS

    cat = load_catalogue()
    assert len(cat) >= 10
    assert set(cat["expected"]) <= set(cat_mod.EXPECTED_LABELS)
    assert set(cat["market"]) <= set(DATASETS)
    assert (cat["end"] >= cat["start"]).all()
    assert cat["source"].str.len().min() > 0
    wanted = {("1987-10-19", "sp500", "F-"), ("1998-09-23", "sp500", "F-"),
              ("2007-08-07", "sp500", "F-"), ("2008-10-10", "sp500", "F-"),
              ("2008-10-27", "vw", "F+"), ("2010-05-06", "sp500", "M"),
              ("2011-08-08", "sp500", "M"), ("2015-08-24", "sp500", "M"),
              ("2018-02-05", "vix", "F+"), ("2018-12-24", "sp500", "D")}
    for day, market, label in wanted:
        day = pd.Timestamp(day)
        hit = cat[(cat["start"] <= day) & (cat["end"] >= day) & (cat["market"] == market)]
        assert list(hit["expected"]) == [label], (day, market)
    # the catalogue must not leak into fitting: no fitting module reads it
    import importlib
    import inspect

    for name in ("stressflow.inference.fitting.fit", "stressflow.inference.fitting.initialize"):
        assert "catalogue" not in inspect.getsource(importlib.import_module(name))


def test_fit_market_resolution(planted):
    fit, _ = planted
    with pytest.raises(ValueError, match="pass market="):
        score_catalogue(fit)
    with pytest.raises(ValueError, match="not a bundled dataset"):
        score_catalogue(fit, market="nasdaq")
    # the simulated fit covers 2010-01-01 .. 2011-07: the flash crash row is inside
    table = score_catalogue(fit, market="sp500", n_draws=10, paths_per_draw=2)
    assert list(table["episode"]) == ["Flash crash 2010"]
    assert list(table["agree"]) == ["n/a"]
    assert cat_mod.fit_market(fit, "vw") == "vw"


@pytest.fixture(scope="module")
def real_fit(tmp_path_factory):
    """A small real fit: bundled S&P 500, 2008-01-01 .. 2009-06-30, 2 chains x 100 draws."""
    from stressflow.inference import fit, save_fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: convergence warnings are expected
        res = fit("sp500", start="2008-01-01", end="2009-06-30", chains=2, draws=100, tune=150,
                  seed=1)
    path = tmp_path_factory.mktemp("fit") / "sp500_0809.nc"
    save_fit(res, path)
    return res, path


def test_catalogue_scores_the_2008_episode_on_a_real_fit(real_fit):
    res, _ = real_fit
    table = score_catalogue(res, market="sp500", n_draws=100, paths_per_draw=10, seed=0)
    assert list(table["episode"]) == ["Lehman / GFC 2008"]
    row = table.iloc[0]
    assert row["expected"] == "F-" and row["direction"] == "selloff"
    assert row["n_days"] == 49  # 2008-09-15 .. 2008-11-20 trading days
    assert 0.0 <= row["p_compulsion_q05"] <= row["p_compulsion"] <= row["p_compulsion_q95"] <= 1
    # Sep-Nov 2008 is the most volatile stretch of this window: forced flow should dominate
    assert row["p_compulsion"] > 0.5
    assert row["agree"] == agreement("F-", row["p_compulsion"])


def _run_cli(argv):
    parser = argparse.ArgumentParser(prog="stressflow")
    sub = parser.add_subparsers(dest="command", required=True)
    register_episodes(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_episodes_on_a_saved_real_fit(real_fit, tmp_path, capsys):
    _, path = real_fit
    out = tmp_path / "episodes.csv"
    rc = _run_cli(["episodes", str(path), "--out", str(out), "--seed", "2", "--n-draws", "40",
                   "--market", "sp500"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "p_compulsion" in text and "Lehman / GFC 2008" in text
    table = pd.read_csv(out, index_col="episode")
    assert len(table) >= 3 and set(table["label"]) <= set(LABELS)
    assert _run_cli(["episodes", str(tmp_path / "missing.nc")]) == 1
    assert "no fit file" in capsys.readouterr().err
