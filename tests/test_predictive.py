"""Posterior predictive checks: the chain simulator, the emissions' samplers, the replicates of
a fit and their test quantities (simulated data with known parameters, then the real S&P 500
fit shared with the feed tests)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import SIM_MU, SIM_P, SIM_SIGMA, make_prepared, simulate_stage_hmm
from fake_fit import fake_fit
from numpy.testing import assert_array_equal
from stressflow.inference import posterior_predictive, ppc_table, save_fit, schema
from stressflow.inference.postprocess.predictive import STATISTICS, ppc_quantities
from stressflow.inference.present import cli
from stressflow.models import dims
from stressflow.models.evaluate import sample_observables
from stressflow.models.numerics.markov import simulate_chain, stationary_distribution
from stressflow.models.spec import ModelSpec

pytestmark = pytest.mark.filterwarnings(
    "ignore::stressflow.data.DataWarning", "ignore::stressflow.inference.FitWarning"
)

K = 4


def _log(p):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# the chain simulator
# --------------------------------------------------------------------------------------------


def test_deterministic_chains_are_followed_exactly():
    cycle = np.roll(np.eye(3), 1, axis=1)  # 0 -> 1 -> 2 -> 0
    paths = simulate_chain(_log([1, 0, 0]), _log(cycle[None]), 7, np.random.default_rng(0))
    assert_array_equal(paths, [[0, 1, 2, 0, 1, 2, 0]])
    # time-varying: stay, swap, stay, swap between stages 0 and 1 of a 2-stage chain
    stay, swap = np.eye(2), np.eye(2)[::-1]
    tv = np.stack([stay, swap, stay, swap])[None]
    paths = simulate_chain(_log([0, 1]), _log(tv), 5, np.random.default_rng(0))
    assert_array_equal(paths, [[1, 1, 0, 0, 1]])


def test_simulated_transitions_match_the_matrix():
    trans = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.2, 0.0, 0.8]])
    paths = simulate_chain(_log(np.ones(3) / 3), _log(np.broadcast_to(trans, (40, 3, 3))), 5000,
                           np.random.default_rng(1))
    counts = np.zeros((3, 3))
    np.add.at(counts, (paths[:, :-1].ravel(), paths[:, 1:].ravel()), 1)
    n = counts.sum(axis=1, keepdims=True)
    freq = counts / n
    se = np.sqrt(trans * (1 - trans) / n)
    assert (np.abs(freq - trans) <= 5 * se + 1e-12).all()
    assert counts[0, 2] == counts[2, 1] == 0  # structural zeros are never crossed
    share = np.bincount(paths.ravel(), minlength=3) / paths.size
    assert np.abs(share - stationary_distribution(trans)).max() < 0.01
    again = simulate_chain(_log(np.ones(3) / 3), _log(np.broadcast_to(trans, (40, 3, 3))), 5000,
                           np.random.default_rng(1))
    assert_array_equal(paths, again)


def test_random_chains_never_take_an_impossible_step():
    """Property (hypothesis, 200 random chains with structural zeros, constant or time-varying):
    the path starts only where the initial law is positive and never makes a move of
    probability zero."""
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(k=st.integers(2, 6), steps=st.integers(1, 40), varying=st.booleans(),
           seed=st.integers(0, 2**32 - 1))
    def check(k, steps, varying, seed):
        rng = np.random.default_rng(seed)
        shape = (3, steps - 1, k, k) if varying else (3, k, k)
        weights = rng.random(shape) * (rng.random(shape) < 0.5)
        weights[..., np.arange(k), np.arange(k)] += 0.1  # every row has a possible move
        trans = weights / weights.sum(axis=-1, keepdims=True)
        init = rng.random(k) * (np.arange(k) != rng.integers(k))
        init /= init.sum()
        paths = simulate_chain(_log(init), _log(trans), steps, rng)
        assert paths.shape == (3, steps) and paths.dtype == np.int8
        assert (init[paths[:, 0]] > 0).all()
        for s in range(3):
            for t in range(1, steps):
                p = trans[s, t - 1] if varying else trans[s]
                assert p[paths[s, t - 1], paths[s, t]] > 0

    check()


def test_the_chain_simulator_refuses_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"log_init must be \(K,\)"):
        simulate_chain(_log([0.5, 0.5]), _log(np.eye(3)[None]), 4, rng)
    with pytest.raises(ValueError, match="has 2 transitions; a path of 4 days needs 3"):
        simulate_chain(_log([0.5, 0.5]), _log(np.broadcast_to(np.eye(2), (1, 2, 2, 2))), 4, rng)
    with pytest.raises(ValueError, match=r"exp\(log_trans\) must be finite with rows summing"):
        simulate_chain(_log([0.5, 0.5]), _log([[[0.5, 0.6], [0.5, 0.5]]]), 4, rng)


# --------------------------------------------------------------------------------------------
# the emissions' samplers
# --------------------------------------------------------------------------------------------


def test_emission_samplers_draw_the_stage_distributions():
    mu, sigma = np.asarray(SIM_MU)[None], np.asarray(SIM_SIGMA)[None]
    stages = np.repeat(np.arange(K), 20000)[None]
    y = sample_observables(ModelSpec.base(), {"mu": mu, "sigma": sigma}, stages,
                           np.random.default_rng(0))
    assert y.shape == (1, 4 * 20000, 4)
    for k in range(K):
        part = y[0, stages[0] == k]
        assert np.abs(part.mean(axis=0) - mu[0, k]).max() < 5 * sigma.max() / np.sqrt(20000)
        assert np.abs(part.std(axis=0) / sigma[0, k] - 1).max() < 0.03
    spec = dataclasses.replace(ModelSpec.base(), emission="student_t")
    nu = np.array([[3.0, 5.0, 10.0, 50.0]])
    y = sample_observables(spec, {"mu": mu, "sigma": sigma, "nu": nu}, stages,
                           np.random.default_rng(0))
    for k in range(K):  # sd of a t_nu variable: sigma sqrt(nu / (nu - 2)); nu = 3 is heavy
        part = y[0, stages[0] == k]
        ratio = np.median(np.abs(part - mu[0, k]), axis=0) / sigma[0, k]
        assert np.abs(ratio / _t_median_abs(nu[0, k]) - 1).max() < 0.05


def _t_median_abs(nu: float) -> float:
    from scipy.stats import t

    return float(t.ppf(0.75, nu))


# --------------------------------------------------------------------------------------------
# replicates of a fit with known parameters
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated():
    features, path = simulate_stage_hmm(2000, seed=21, n_missing=30)
    return make_prepared(features), path


def _fit(prepared, sigma_scale=1.0):
    return fake_fit(prepared, SIM_MU, np.asarray(SIM_SIGMA) * sigma_scale, SIM_P, n_draws=50,
                    jitter=0.01, seed=5)


def test_replicates_are_labelled_and_keep_the_missing_pattern(simulated):
    fit = _fit(simulated[0])
    tree = posterior_predictive(fit, n_draws=20, seed=3)
    pp = tree["posterior_predictive"]
    assert pp["features"].dims == (dims.CHAIN, dims.DRAW, dims.TIME, dims.FEATURE)
    assert pp.sizes[dims.CHAIN] == 2 and pp.sizes[dims.DRAW] == 10
    assert_array_equal(pp[dims.TIME].values, fit["observed_data"][dims.TIME].values)
    missing = ~np.isfinite(fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE)
                           .values)
    assert missing.sum() == 30
    rep = pp["features"].values
    assert np.isnan(rep[:, :, missing]).all() and np.isfinite(rep[:, :, ~missing]).all()
    assert json.loads(pp.attrs["stages"]) == list(fit["posterior"][dims.STAGE].values)
    assert "posterior_predictive" not in fit.children  # the fit is not modified
    same = posterior_predictive(fit, n_draws=20, seed=3)["posterior_predictive"]
    assert_array_equal(same["features"].values, rep)
    other = posterior_predictive(fit, n_draws=20, seed=4)["posterior_predictive"]
    assert not np.array_equal(other["stage"].values, pp["stage"].values)


def test_a_right_model_passes_and_a_wrong_one_fails(simulated):
    right = ppc_table(posterior_predictive(_fit(simulated[0]), n_draws=100, seed=0))
    assert set(right["statistic"]) == {*STATISTICS, "stage_share"}
    core = right[right["statistic"].isin(("mean", "sd", "q01", "q99", "acf1"))]
    assert core["ppp"].between(0.02, 0.98).all(), core
    shares = right[right["statistic"] == "stage_share"]
    pi = stationary_distribution(np.asarray(SIM_P))
    assert np.abs(shares["replicated_mean"].to_numpy() - pi).max() < 0.06
    # the same data under emission sds half the truth: given the stages (smoothed paths) the
    # replicates are too narrow
    wrong = ppc_table(posterior_predictive(_fit(simulated[0], 0.5), n_draws=100,
                                           paths="smoothed", seed=0))
    sd = wrong[wrong["statistic"] == "sd"]
    assert (sd["ppp"] == 0.0).all() and (sd["replicated_q95"] < sd["observed"]).all()


def test_smoothed_paths_follow_the_data(simulated):
    prepared, path = simulated
    tree = posterior_predictive(_fit(prepared), n_draws=20, paths="smoothed", seed=0)
    stages = tree["posterior_predictive"]["stage"].values.reshape(-1, len(path))
    assert (stages == path).mean() > 0.95  # separated stages: FFBS recovers the true path
    assert tree["posterior_predictive"].attrs["paths"] == "smoothed"


def test_ppc_quantities_by_hand():
    y = np.array([[0.0], [2.0], [3.0], [np.nan], [4.0], [1.0]])
    q = ppc_quantities(y, threshold=np.array([1.5]))
    assert q["mean"][0] == pytest.approx(2.0) and q["sd"][0] == pytest.approx(np.sqrt(2.0))
    # runs above 1.5: (2, 3) then, after the missing day, (4): mean length 1.5
    assert q["extreme_run"][0] == pytest.approx(1.5)
    # lag-1 pairs with both observed: (2, 0), (3, 2), (1, 4)
    a, b = np.array([2.0, 3.0, 1.0]), np.array([0.0, 2.0, 4.0])
    assert q["acf1"][0] == pytest.approx(np.corrcoef(a, b)[0, 1])


def test_bad_calls_are_refused(simulated):
    fit = _fit(simulated[0])
    with pytest.raises(ValueError, match="paths must be one of"):
        posterior_predictive(fit, paths="prior")
    with pytest.raises(ValueError, match="n_draws"):
        posterior_predictive(fit, n_draws=0)
    with pytest.raises(ValueError, match="call posterior_predictive"):
        ppc_table(fit)
    panel = fit.copy()
    panel.attrs["model_kind"] = schema.PANEL_KIND  # what marks a panel fit (schema.is_panel)
    with pytest.raises(ValueError, match="one-asset fits"):
        posterior_predictive(panel)


# --------------------------------------------------------------------------------------------
# the real S&P 500 fit
# --------------------------------------------------------------------------------------------


def test_real_fit_replicates(real_fit, tmp_path, capsys):
    smoothed = ppc_table(posterior_predictive(real_fit, n_draws=60, paths="smoothed", seed=0))
    # given the stages the data imply, each observable's mean and sd are reproduced
    core = smoothed[smoothed["statistic"].isin(("mean", "sd"))]
    assert core["ppp"].between(0.05, 0.95).all(), core
    # what it does not reproduce, measured: the day-to-day persistence of the observables
    # inside a stage (the emissions are independent given the stage), e.g. volume's
    acf = smoothed.set_index(["statistic", "item"]).loc["acf1"]
    assert acf.loc["volume", "observed"] > 0.4 and acf.loc["volume", "ppp"] == 0.0
    path = save_fit(real_fit, tmp_path / "fit.nc")
    out = tmp_path / "ppc.csv"
    assert cli.main(["ppc", str(path), "--draws", "40", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "transition paths, about 40 draws" in text and "stage_share" in text
    assert out.exists()
    assert cli.main(["ppc", str(tmp_path / "none.nc")]) == 1
    assert "stressflow ppc:" in capsys.readouterr().err
