"""Evaluation of compulsion scores (stressflow.inference.apps.evaluation), the calm label of the
catalogue and the ``stressflow evaluate`` parser.

Fits are fit-shaped trees built without MCMC (tests/fake_fit.py) on the real bundled S&P 500,
with stage parameters read off the data (volatility bins), except for one slow end-to-end run.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from fake_fit import fake_fit
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.metrics import brier_score_loss, roc_auc_score
from stressflow.data import FeatureTransform, prepare, read_prices
from stressflow.inference.apps import evaluation as ev
from stressflow.inference.apps.catalogue import agreement, load_catalogue
from stressflow.inference.apps.feed import update
from stressflow.inference.postprocess.summaries import stage_probabilities
from stressflow.inference.present import cli_evaluate
from stressflow.models import dims

pytestmark = pytest.mark.filterwarnings("ignore::stressflow.data.DataWarning")

CUT = "2007-06-30"


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def _table(labels, scores):
    return pd.DataFrame({"expected": labels, "p": scores})


def test_metrics_against_hand_computed_values():
    table = _table(["F-", "F+", "D", "D", "D", "M", "calm"],
                   [0.9, 0.4, 0.4, 0.1, 0.2, 0.5, 0.0])
    before = table.copy()
    m = ev.evaluation_metrics(table, prob_column="p")
    # pairs: 0.9 beats all three D (3); 0.4 ties 0.4 (0.5) and beats 0.1, 0.2 (2) -> 5.5 / 6
    assert m["auc"] == pytest.approx(5.5 / 6, abs=1e-15)
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.16 + 0.01 + 0.04) / 5, abs=1e-15)
    assert (m["n_forced"], m["n_discretionary"], m["n_mixed"], m["n_calm"]) == (2, 3, 1, 1)
    assert (m["n_forced_ge_hi"], m["n_discretionary_le_lo"], m["n_unscored"]) == (1, 2, 0)
    assert m["auc_note"] == ""
    pd.testing.assert_frame_equal(table, before)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 40
    labels = rng.choice(["F-", "F+", "D", "M", "calm"], size=n)
    scores = np.round(rng.uniform(size=n), 1)  # rounded: many ties
    m = ev.evaluation_metrics(_table(labels, scores), prob_column="p")
    keep = np.isin(labels, ["F-", "F+", "D"])
    y = np.isin(labels[keep], ["F-", "F+"]).astype(int)
    assert m["auc"] == pytest.approx(roc_auc_score(y, scores[keep]), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, scores[keep]), abs=1e-12)
    assert m["n_forced"] + m["n_discretionary"] == keep.sum()


def test_metrics_empty_groups_nan_and_bad_input():
    only_f = ev.evaluation_metrics(_table(["F-", "M"], [0.8, 0.1]), prob_column="p")
    assert np.isnan(only_f["auc"]) and "discretionary" in only_f["auc_note"]
    assert only_f["brier"] == pytest.approx(0.04)
    only_d = ev.evaluation_metrics(_table(["D"], [0.2]), prob_column="p")
    assert np.isnan(only_d["auc"]) and "forced" in only_d["auc_note"]
    none = ev.evaluation_metrics(_table(["M", "calm"], [0.2, 0.0]), prob_column="p")
    assert np.isnan(none["auc"]) and np.isnan(none["brier"])
    # a NaN score is not scored, and counted
    m = ev.evaluation_metrics(_table(["F-", "F+", "D"], [0.9, np.nan, 0.2]), prob_column="p")
    assert (m["n_forced"], m["n_unscored"], m["auc"]) == (1, 1, 1.0)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['q'\]"):
        ev.evaluation_metrics(_table(["F-"], [0.5]), prob_column="q")
    with pytest.raises(ValueError, match="unknown label"):
        ev.evaluation_metrics(_table(["F"], [0.5]), prob_column="p")
    with pytest.raises(ValueError, match="outside"):
        ev.evaluation_metrics(_table(["F-", "D"], [1.2, 0.1]), prob_column="p")


# --------------------------------------------------------------------------------------------
# the calm label
# --------------------------------------------------------------------------------------------


def test_calm_agreement():
    assert agreement("calm", 0.9, mean_forced=0.019) == "yes"
    assert agreement("calm", 0.0, mean_forced=0.02) == "no"
    assert agreement("calm", 0.0, mean_forced=float("nan")) == "n/a"
    with pytest.raises(ValueError, match="mean_forced"):
        agreement("calm", 0.0)
    # the other labels are unchanged by mean_forced
    assert agreement("D", 0.2, mean_forced=0.9) == "yes"
    assert agreement("F+", 0.7) == "yes" and agreement("M", 0.9) == "n/a"


def test_catalogue_file_with_calm_rows(tmp_path):
    head = "episode,start,end,market,expected,source,note\n"
    good = head + "Calm 2017,2017-01-03,2017-12-29,sp500,calm,realised volatility,\n"
    path = tmp_path / "cat.csv"
    path.write_text(good)
    cat = load_catalogue(path)
    assert list(cat["expected"]) == ["calm"] and cat["end"].iloc[0] == pd.Timestamp("2017-12-29")
    path.write_text(good + "Quiet,2016-01-04,2016-02-01,sp500,quiet,x,\n")
    with pytest.raises(ValueError, match=r"cat.csv row 2 \('Quiet'\): expected label 'quiet'"):
        load_catalogue(path)
    bundled = load_catalogue()  # whatever rows it has, every label is known
    assert bundled["expected"].isin(["F-", "F+", "D", "M", "calm"]).all()


# --------------------------------------------------------------------------------------------
# fake fits on the real S&P 500
# --------------------------------------------------------------------------------------------

P_STICKY = np.full((4, 4), 0.01) + np.eye(4) * 0.96


def _params(prepared):
    """Stage means / sds from volatility bins of the data (0-50%, 50-80%, 80-95%, 95-100%)."""
    f = prepared.features
    vol = f["volatility"].to_numpy()
    stage = np.digitize(vol, np.nanquantile(vol, [0.5, 0.8, 0.95]))
    mu = np.array([f[stage == k].mean().to_numpy() for k in range(4)])
    sd = np.array([f[stage == k].std().to_numpy() for k in range(4)])
    return mu, sd


def _catalogue_with_test_rows():
    cat = load_catalogue()
    extra = pd.DataFrame({
        "episode": ["test calm 2017", "test control 2008", "test before the cut"],
        "start": pd.to_datetime(["2017-01-03", "2008-05-01", "2007-03-01"]),
        "end": pd.to_datetime(["2017-12-29", "2008-05-30", "2007-03-30"]),
        "market": "sp500", "expected": ["calm", "D", "D"], "source": "test", "note": "",
    })
    return pd.concat([cat, extra], ignore_index=True)


def _observed(fit):
    feats = fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE).values
    return np.isfinite(feats).any(axis=1)


@pytest.fixture(scope="module")
def in_sample_fit():
    prepared = prepare("sp500", start="2015-06-01", end="2018-12-31")
    mu, sd = _params(prepared)
    return fake_fit(prepared, mu, sd, P_STICKY, n_chains=2, n_draws=5, seed=2, source="sp500")


def test_in_sample_on_a_fake_fit(in_sample_fit):
    fit = in_sample_fit
    cat = _catalogue_with_test_rows()
    res = ev.evaluate_in_sample(fit, catalogue=cat, n_draws=10, paths_per_draw=4, seed=1)
    times = pd.DatetimeIndex(fit["observed_data"][dims.TIME].values)
    want = cat[(cat["market"] == "sp500") & (cat["start"] >= times[0])
               & (cat["end"] <= times[-1])].sort_values("start", kind="stable")["episode"]
    assert list(res.table["episode"]) == list(want)
    assert "test calm 2017" in list(res.table["episode"])
    p = stage_probabilities(fit, "smoothed")["forced_flow"]
    obs = _observed(fit)
    for _, row in res.table.iterrows():
        inside = (p.index >= row["start"]) & (p.index <= row["end"]) & obs
        assert row["mean_forced"] == pytest.approx(p[inside].mean(), abs=1e-12)
        assert row["n_days"] == inside.sum()
        assert row["p_compulsion_q05"] <= row["p_compulsion"] <= row["p_compulsion_q95"]
        assert row["agree"] == agreement(row["expected"], row["p_compulsion"],
                                         mean_forced=row["mean_forced"])
    calm = res.table.set_index("episode").loc["test calm 2017"]
    assert calm["agree"] == ("yes" if calm["mean_forced"] < 0.02 else "no")
    fig = res.figures
    assert fig["share of days with smoothed Pr(forced_flow) > 0.5"] == pytest.approx(
        (p > 0.5).mean())
    assert fig["mean smoothed Pr(forced_flow), all days"] == pytest.approx(p.mean())
    assert fig["mean smoothed Pr(forced_flow), calendar 2017"] == pytest.approx(
        p.loc["2017"].mean())
    assert not any("2005-2006" in k for k in fig)  # not covered by this fit
    calm_key = [k for k in fig if "calm period 'test calm 2017'" in k]
    assert len(calm_key) == 1 and fig[calm_key[0]] == calm["mean_forced"]
    trans = fit["posterior"]["P"].sel({dims.STAGE_FROM: "forced_flow",
                                       dims.STAGE_TO: "forced_flow"}).values
    assert fig["expected forced_flow duration (days), posterior mean"] == pytest.approx(
        (1 / (1 - trans)).mean())
    # the long-run share of P: the first row of P^n for large n, averaged over draws
    mats = fit["posterior"]["P"].transpose(dims.CHAIN, dims.DRAW, dims.STAGE_FROM,
                                           dims.STAGE_TO).values
    mats = mats.reshape(-1, *mats.shape[-2:])
    ff = list(fit["posterior"][dims.STAGE_TO].values).index("forced_flow")
    limit = np.mean([np.linalg.matrix_power(m, 50_000)[0, ff] for m in mats])
    key = "stationary forced_flow share of P (pi P = pi)"
    assert fig[f"{key}, posterior mean"] == pytest.approx(limit, abs=1e-9)
    assert fig[f"{key}, 5%"] <= fig[f"{key}, posterior mean"] <= fig[f"{key}, 95%"]
    assert pd.Series(res.metrics).equals(
        pd.Series(ev.evaluation_metrics(res.table, prob_column="p_compulsion")))
    assert np.isnan(res.metrics["auc"]) and "forced" in res.metrics["auc_note"]  # no F here
    text = res.to_markdown()
    assert "| test calm 2017 | calm |" in text and "auc:" in text


def _filter_oracle(fit, prepared) -> pd.Series:
    """Independent forward filter with the fit's draws: mean over draws of
    Pr(stage_t = forced_flow | y_1..y_t, theta_s), uniform start, Gaussian emissions over the
    observed features (NumPy/SciPy, nothing shared with the package)."""
    post = fit["posterior"]
    y = prepared.features.to_numpy()
    obs = np.isfinite(y)
    mus = post["mu"].transpose(dims.CHAIN, dims.DRAW, dims.STAGE, dims.FEATURE).values
    sds = post["sigma"].transpose(dims.CHAIN, dims.DRAW, dims.STAGE, dims.FEATURE).values
    trans = post["P"].transpose(dims.CHAIN, dims.DRAW, dims.STAGE_FROM, dims.STAGE_TO).values
    out = []
    for mu, sd, tr in zip(mus.reshape(-1, 4, 4), sds.reshape(-1, 4, 4), trans.reshape(-1, 4, 4),
                          strict=True):
        ll = np.where(obs[:, None, :], norm.logpdf(np.nan_to_num(y)[:, None, :], mu, sd), 0.0)
        ll = ll.sum(axis=2)
        alpha = np.log(np.full(4, 0.25)) + ll[0]
        filt = np.empty_like(ll)
        filt[0] = alpha - logsumexp(alpha)
        for t in range(1, len(y)):
            alpha = logsumexp(filt[t - 1][:, None] + np.log(tr), axis=0) + ll[t]
            filt[t] = alpha - logsumexp(alpha)
        out.append(np.exp(filt[:, 3]))
    return pd.Series(np.mean(out, axis=0), index=prepared.features.index)


@pytest.fixture(scope="module")
def out_of_time():
    prepared = prepare("sp500", start="2005-01-01", end=CUT)
    mu, sd = _params(prepared)
    fit = fake_fit(prepared, mu, sd, P_STICKY, n_chains=2, n_draws=3, seed=4, source="sp500")
    prices = read_prices("sp500")
    new = prices.loc["2007-07-01":"2009-12-31"]
    return fit, new, update(fit, new)


def test_out_of_time_scores_filtered_probabilities_after_the_cut(out_of_time):
    fit, new, updated = out_of_time
    cat = _catalogue_with_test_rows()
    res = ev.evaluate_out_of_time(fit, updated, cut=CUT, catalogue=cat)
    want = cat[(cat["market"] == "sp500") & (cat["start"] > pd.Timestamp(CUT))
               & (cat["end"] <= pd.Timestamp("2009-12-31"))].sort_values("start")["episode"]
    assert list(res.table["episode"]) == list(want)
    assert {"Lehman / GFC 2008", "Quant quake 2007", "test control 2008"} <= set(want)
    assert "test before the cut" not in list(res.table["episode"])
    # p_filtered = mean over the episode's observed days of an independent forward filter
    transform = FeatureTransform.from_dict(json.loads(fit.attrs["transform"]))
    whole = prepare("sp500", start="2005-01-01", end="2009-12-31", transform=transform)
    oracle = _filter_oracle(fit, whole)
    obs = whole.features.notna().any(axis=1).to_numpy()
    for _, row in res.table.iterrows():
        inside = (oracle.index >= row["start"]) & (oracle.index <= row["end"]) & obs
        assert row["n_days"] == inside.sum()
        assert_allclose(row["p_filtered"], oracle[inside].mean(), rtol=0, atol=1e-9)
        assert_allclose(row["max_filtered"], oracle[inside].max(), rtol=0, atol=1e-9)
    after = oracle[oracle.index > pd.Timestamp(CUT)]
    assert res.figures["days after the cut"] == len(after)
    assert_allclose(res.figures["mean filtered Pr(forced_flow), days after the cut"],
                    after.mean(), atol=1e-9)
    y2008 = after.loc["2008"]
    key = "first day of 2008 with filtered Pr(forced_flow) > 0.5"
    if (y2008 > 0.5).any():
        assert res.figures[key].startswith(f"{y2008.index[(y2008 > 0.5).argmax()]:%Y-%m-%d}")
    else:
        assert res.figures[key] == "none in 2008"
    assert res.figures["STLFSI peak week ending"] == pd.Timestamp("2008-10-17")
    assert res.metrics == ev.evaluation_metrics(res.table, prob_column="p_filtered")
    assert np.isfinite(res.metrics["auc"]) and res.metrics["n_discretionary"] == 1
    assert "p_filtered = mean over D of Pr(stage_t = forced_flow | y_1..y_t)" in str(res)


def test_out_of_time_uses_no_later_rows_and_no_smoothing(out_of_time):
    fit, new, updated = out_of_time
    res = ev.evaluate_out_of_time(fit, updated, cut=CUT).table.set_index("episode")
    # change every row after the quant quake: its score cannot move, Lehman's must
    changed = new.copy()
    later = changed.index > pd.Timestamp("2007-08-09")
    changed.loc[later, "volume"] *= 5.0
    changed.loc[later, "high"] = changed.loc[later, ["high", "close"]].max(axis=1) * 1.03
    other = ev.evaluate_out_of_time(fit, update(fit, changed), cut=CUT).table.set_index("episode")
    assert other.loc["Quant quake 2007", "p_filtered"] == res.loc["Quant quake 2007", "p_filtered"]
    assert other.loc["Lehman / GFC 2008", "p_filtered"] != res.loc["Lehman / GFC 2008",
                                                                   "p_filtered"]
    # the smoothed probabilities play no part
    garbled = updated.copy(deep=True)
    garbled["stages"]["smoothed"] = garbled["stages"]["smoothed"].fillna(0.0) * 0 + 0.25
    again = ev.evaluate_out_of_time(fit, garbled, cut=CUT).table.set_index("episode")
    pd.testing.assert_frame_equal(again, res)


def test_out_of_time_refuses_inconsistent_fits(out_of_time, in_sample_fit):
    fit, _, updated = out_of_time
    with pytest.raises(ValueError, match="after the cut 2007-03-30"):
        ev.evaluate_out_of_time(fit, updated, cut="2007-03-30")
    with pytest.raises(ValueError, match="not fit_to_cut extended"):
        ev.evaluate_out_of_time(fit, in_sample_fit, cut=CUT)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _parser():
    parser = argparse.ArgumentParser(prog="stressflow")
    cli_evaluate.register_cli(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_parser_defaults_and_options():
    args = _parser().parse_args(["evaluate"])
    assert (args.cut, args.start, args.end) == ("2006-12-31", "1985-01-01", "2018-12-31")
    assert (args.chains, args.draws, args.tune, args.seed) == (4, 1000, 2000, 0)
    assert args.vw == ("1997-01-01", "2017-10-31") and not args.quiet and args.out is None
    args = _parser().parse_args(["evaluate", "--cut", "2007-06-30", "--start", "2005-01-01",
                                 "--end", "2009-12-31", "--chains", "2", "--draws", "100",
                                 "--tune", "50", "--seed", "3", "--vw", "none", "--out",
                                 "r.md", "--quiet"])
    assert (args.cut, args.chains, args.draws, args.tune, args.seed) == ("2007-06-30", 2, 100,
                                                                          50, 3)
    assert args.vw is None and args.quiet and args.out == "r.md"
    with pytest.raises(SystemExit):
        _parser().parse_args(["evaluate", "--vw", "2005-01-01"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["evaluate", "--draws", "many"])


def test_cli_prints_and_writes_the_report(monkeypatch, tmp_path, capsys, in_sample_fit):
    section = ev.evaluate_in_sample(in_sample_fit, n_draws=4, paths_per_draw=2)
    calls = {}

    def fake_run(**kwargs):
        calls.update(kwargs)
        return ev.Evaluation({"sp500": section}, section, {"cut": kwargs["cut"]})

    monkeypatch.setattr(ev, "run_evaluation", fake_run)
    out = tmp_path / "results.md"
    args = _parser().parse_args(["evaluate", "--cut", "2016-06-30", "--out", str(out),
                                 "--quiet", "--vw", "2006-01-01:2007-01-01"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert calls["cut"] == "2016-06-30" and calls["progress"] is False
    assert calls["vw"] == ("2006-01-01", "2007-01-01")
    assert printed.startswith("# stressflow evaluate") and "## Out of time" in printed
    assert out.read_text() == printed.rstrip("\n") + "\n"

    def bad_run(**kwargs):
        raise ValueError("need start < cut < end")

    monkeypatch.setattr(ev, "run_evaluation", bad_run)
    assert args.func(args) == 1
    assert "stressflow evaluate: need start < cut < end" in capsys.readouterr().err


def test_run_evaluation_refuses_a_cut_outside_the_window():
    with pytest.raises(ValueError, match="start < cut < end"):
        ev.run_evaluation(start="2005-01-01", cut="2010-01-01", end="2009-12-31")


def test_run_evaluation_checks_every_window_before_the_first_fit(monkeypatch):
    # low_vol needs five years of the price tape before its first value (VW: from 2000-03-14),
    # so a VW window from 1997 fails; before this check it failed after the two S&P 500 fits.
    from stressflow.data import DataError
    from stressflow.inference.fitting import fit as fit_module
    from stressflow.models.spec import ModelSpec

    def no_fit(*args, **kwargs):
        raise AssertionError("a fit started before every window was checked")

    monkeypatch.setattr(fit_module, "fit", no_fit)
    spec = ModelSpec(transition_covariates=("low_vol",), transition_model="ladder")
    with pytest.raises(DataError, match="low_vol"):
        ev.run_evaluation(spec=spec, start="1990-01-02", vw=("1997-01-02", "2017-10-31"))


# --------------------------------------------------------------------------------------------
# one real run (MCMC)
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_evaluation_end_to_end():
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = ev.run_evaluation(cut=CUT, start="2005-01-01", end="2009-12-31",
                                   vw=("2005-01-01", "2009-12-31"), chains=2, draws=100,
                                   tune=100, seed=0)
    wall = time.perf_counter() - t0
    print(result)
    print(f"wall time {wall:.1f} s")
    assert set(result.in_sample) == {"sp500", "vw"}
    sp = result.in_sample["sp500"].table
    assert {"Quant quake 2007", "Lehman / GFC 2008"} <= set(sp["episode"])
    assert list(result.in_sample["vw"].table["episode"]) == ["Volkswagen squeeze 2008"]
    oot = result.out_of_time.table
    assert (oot["start"] > pd.Timestamp(CUT)).all() and "Lehman / GFC 2008" in set(oot["episode"])
    assert oot["p_filtered"].between(0, 1).all()
    text = result.to_markdown()
    assert "## In sample" in text and "## Out of time" in text and "auc:" in text
    # k-means seeds x smoothing windows, then the four-stage optimum's splits along each of the
    # six observables and along all of them
    from stressflow.inference.fitting import initialize as ini

    n_starts = ini.EM_STARTS * len(ini._EM_SMOOTH_WINDOWS) + 4 * (6 + 1)
    for name in ("sp500", "vw", "sp500 to the cut"):
        assert result.settings[f"start, {name}"].startswith(
            f"EM best of {n_starts} starts, reached")
