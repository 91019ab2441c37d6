"""Models with K = 2..6 stages (``ModelSpec(n_stages=K)``): names, priors, the ladder mask,
and everything downstream that reads stages by name (episode scores, the feed, fit_many's
summary, the CLI options).

Fast checks without MCMC, on simulated data and on the bundled S&P 500 (EM start); one short
NUTS fit of the three-stage model on the bundled S&P 500 runs end to end.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from stressflow.data import prepare
from stressflow.inference.apps.episodes import compulsion_scores
from stressflow.inference.apps.many import tasks_summary
from stressflow.inference.fitting.initialize import em_start
from stressflow.inference.present.model_options import add_model_options, spec_from_args
from stressflow.models import dims
from stressflow.models.spec import ModelSpec, allowed_transitions
from stressflow.models.transitions import dirichlet_concentration, ladder_signs


def test_stage_names_by_count():
    assert dims.stage_names(2) == ("orderly", "forced_flow")
    assert dims.stage_names(3) == ("orderly", "fragile", "forced_flow")
    assert dims.stage_names(4) == dims.LADDER
    assert dims.stage_names(5) == dims.STAGES
    assert dims.stage_names(7) == (*dims.STAGES, "stage_5", "stage_6")
    for bad in (1, 0, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"^n_stages must be an integer >= 2, got "):
            dims.stage_names(bad)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_spec_with_k_stages_resolves_names_durations_and_round_trips(k):
    spec = ModelSpec(n_stages=k)
    assert spec.n_stages == k and spec.stage_names == dims.stage_names(k)
    assert spec.discretionary_stage == (k >= 5)
    # the framework's durations follow the stages by name
    by_name = {"orderly": 250, "fragile": 250, "margin_pressure": 20, "forced_flow": 7,
               "discretionary": 40, "stage_5": 40}
    assert spec.stage_durations == tuple(float(by_name[n]) for n in spec.stage_names)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert dirichlet_concentration(spec).shape == (k, k)
    base = ModelSpec.base(n_stages=k)
    assert base.n_stages == k and base.compulsion_feature is None


def test_spec_stage_options_that_contradict_are_refused():
    assert ModelSpec() == ModelSpec(n_stages=5) == ModelSpec(discretionary_stage=True)
    assert ModelSpec(discretionary_stage=False) == ModelSpec(n_stages=4)
    with pytest.raises(ValueError, match="contradicts n_stages=3"):
        ModelSpec(n_stages=3, discretionary_stage=True)
    with pytest.raises(ValueError, match="contradicts n_stages=6"):
        ModelSpec(n_stages=6, discretionary_stage=False)
    with pytest.raises(ValueError, match="n_stages must be an integer >= 2"):
        ModelSpec(n_stages=1)
    with pytest.raises(ValueError, match="stage_durations must be 3"):
        ModelSpec(n_stages=3, stage_durations=(250, 250, 20, 7))


def test_sequential_mask_keeps_the_ladder_short_and_extra_stages_outside_it():
    # K = 3: orderly <-> fragile <-> forced_flow, and a direct return to orderly
    assert_array_equal(allowed_transitions("sequential", 3),
                       [[1, 1, 0], [1, 1, 1], [1, 1, 1]])
    six = allowed_transitions("sequential", 6)
    assert_array_equal(six[:5, :5], allowed_transitions("sequential", 5))
    assert six[5].all() and six[:, 5].all()
    signs = ladder_signs(6)
    assert not signs[4:].any() and not signs[:, 4:].any()
    assert_array_equal(ladder_signs(3), np.sign(np.arange(3)[None] - np.arange(3)[:, None]))


def test_compulsion_scores_read_stages_by_name():
    # the same joint paths under two labellings: value 1 is forced flow with K = 2 and
    # fragile with K = 5
    paths = np.array([[1] * 6, [0] * 6, [1] * 3 + [0] * 3, [0] * 6])
    two = compulsion_scores(paths, np.arange(4), np.arange(6), stages=dims.stage_names(2))
    assert two["p_compulsion"] == pytest.approx(0.5)
    assert two["p_margin_pressure_or_worse"] == pytest.approx(0.5)  # forced flow alone
    assert np.isnan(two["p_margin_lead_in"])  # no margin-pressure stage to lead in
    five = compulsion_scores(paths, np.arange(4), np.arange(6), stages=dims.STAGES)
    assert five["p_compulsion"] == 0.0 and five["p_margin_pressure_or_worse"] == 0.0


def test_fit_many_summary_carries_extra_stages_by_name():
    time = ["2001-01-02", "2001-01-03"]
    records = {
        "a": {"time": time, "stages": list(dims.stage_names(6)),
              "filtered": np.full((2, 6), 1 / 6), "smoothed": np.full((2, 6), 1 / 6)},
        "b": {"time": time, "stages": list(dims.stage_names(2)),
              "filtered": np.array([[0.9, 0.1]] * 2), "smoothed": np.array([[0.8, 0.2]] * 2)},
    }
    ds = tasks_summary("asset", ["a", "b"], records, {})
    assert list(ds[dims.STAGE].values) == list(dims.stage_names(6))
    assert np.allclose(ds["filtered"].sum(dims.STAGE), 1.0)
    b = ds["smoothed"].sel(asset="b")
    assert float(b.sel(stage="forced_flow")[0]) == pytest.approx(0.2)
    assert float(b.sel(stage="fragile")[0]) == 0.0


def _args(*argv):
    p = argparse.ArgumentParser()
    add_model_options(p)
    return p.parse_args(list(argv))


def test_cli_stage_option():
    assert spec_from_args(_args("--stages", "3")) == ModelSpec(n_stages=3)
    assert spec_from_args(_args("--stages", "6")).stage_names[-1] == "stage_5"
    assert spec_from_args(_args("--model", "base", "--stages", "2")) == ModelSpec.base(n_stages=2)
    assert spec_from_args(_args("--discretionary", "off")) == ModelSpec(n_stages=4)
    with pytest.raises(ValueError, match="contradicts"):
        spec_from_args(_args("--stages", "3", "--discretionary", "on"))


@pytest.fixture(scope="module")
def sp500():
    return prepare("sp500", start="1995-01-01", end="2012-12-31",
                   observables=ModelSpec().observables)


def test_em_start_on_sp500_names_2008_forced_flow_and_more_stages_shrink_it(sp500):
    """Whatever K, the EM start names the October 2008 crash forced flow (it has the largest
    volatility break of the window); each added non-compulsion stage gives turbulent days
    somewhere else to go, so the share of forced-flow days falls from K = 2 to 3 to 6."""
    from stressflow.models.evaluate import evaluate, model_data
    from stressflow.models.numerics import kernels

    index = sp500.features.index
    crash = (index >= "2008-10-06") & (index <= "2008-10-28")
    shares = []
    for k in (2, 3, 6):
        spec = ModelSpec(n_stages=k)
        mu, sigma, trans = _start_params(spec, em_start(sp500.features, spec, seed=0))
        assert mu.shape == (k, sp500.features.shape[1])
        assert np.allclose(trans.sum(axis=1), 1.0)
        assert (trans[~allowed_transitions(spec.transitions, k)] == 0).all()
        params = {"mu": mu, "sigma": sigma, "P": trans}
        log_init, log_trans, log_lik = evaluate(spec, params, model_data(spec, sp500.features))
        gamma = kernels.smooth(log_init, log_trans, np.ascontiguousarray(log_lik))[0]
        ff = spec.stage_names.index(dims.FORCED_FLOW)
        assert gamma[crash, ff].mean() > 0.9, k
        shares.append((gamma[:, ff] > 0.5).mean())
    assert shares[0] > shares[1] > shares[2], shares


def _start_params(spec, start):
    """``(mu, sigma, P)`` from an EM start, through the model's own deterministics."""
    from stressflow.models.pymc_model import build_model

    from tests.test_compulsion_model import _deterministic, _unconstrained

    model = build_model(_features_stub(spec), spec)
    point = model.initial_point() | _unconstrained(model, start)
    return [_deterministic(model, name, point) for name in ("mu", "sigma", "P")]


def _features_stub(spec):
    import pandas as pd

    names = [*dims.FEATURES, *spec.observables]
    index = pd.bdate_range("2001-01-01", periods=3, name=dims.TIME)
    return pd.DataFrame(np.zeros((3, len(names))), index=index, columns=names)


def test_three_stage_fit_on_sp500_end_to_end():
    """A short NUTS fit of K = 3: labelled stages, probabilities that sum to 1, episode scores
    and a feed whose absent stage (margin pressure) is 0."""
    from stressflow.inference import fit
    from stressflow.inference.apps.episodes import episodes
    from stressflow.inference.apps.feed import feed

    spec = ModelSpec(n_stages=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit("sp500", start="2007-01-01", end="2009-06-30", spec=spec, chains=2,
                  draws=100, tune=150, seed=3)
    st = res["stages"]
    assert list(st[dims.STAGE].values) == list(spec.stage_names)
    assert np.allclose(st["smoothed"].sum(dims.STAGE), 1.0, atol=1e-5)
    assert list(res["posterior"]["P"][dims.STAGE_FROM].values) == list(spec.stage_names)
    ep = episodes(res, windows=[("2008-10-06", "2008-10-28")], n_draws=20)
    assert ep["p_compulsion"].iloc[0] > 0.7
    f = feed(res)
    assert (f["filtered_margin_pressure"] == 0).all() and (f["filtered_discretionary"] == 0).all()
    assert np.allclose(f["p_margin_or_worse"], f["p_compulsion"])
    assert np.allclose(f[[f"filtered_{k}" for k in dims.STAGES]].sum(axis=1), 1.0, atol=1e-5)


def test_six_stage_fit_scores_episodes_and_the_feed_refuses_the_extra_stage():
    from stressflow.inference.apps.episodes import episodes
    from stressflow.inference.apps.feed import feed
    from stressflow.inference.postprocess.paths import sample_stage_paths
    from stressflow.inference.present.plots import stage_color

    from tests.fake_fit import fake_fit

    prep = prepare("sp500", start="2010-01-01", end="2010-12-31")
    spec = ModelSpec.base(n_stages=6)
    mu = np.zeros((6, 4))
    mu[:, dims.FEATURES.index("volatility")] = np.linspace(-1.5, 2.0, 6)
    trans = np.full((6, 6), 0.02) + np.eye(6) * 0.88
    fit = fake_fit(prep, mu, np.ones((6, 4)), trans, spec=spec)
    assert list(fit["stages"][dims.STAGE].values)[-1] == "stage_5"
    paths = sample_stage_paths(fit, n_draws=5, paths_per_draw=4, seed=0)
    ep = episodes(fit, windows=[("2010-05-03", "2010-05-28")], paths=paths)
    # oracle: the share of paths with forced flow on at least half of the window's days
    times = pd.DatetimeIndex(fit["stages"][dims.TIME].values)
    days = np.flatnonzero((times >= "2010-05-03") & (times <= "2010-05-28"))
    ff = list(fit["stages"][dims.STAGE].values).index("forced_flow")
    hand = ((paths.values[:, days] == ff).sum(axis=1) >= 0.5 * days.size).mean()
    assert ep["n_days"].iloc[0] == days.size == 20
    assert ep["p_compulsion"].iloc[0] == pytest.approx(hand)
    assert 0.0 < hand < 1.0  # the window is one where the paths disagree, so it tests a count
    with pytest.raises(ValueError, match=r"also has \['stage_5'\]"):
        feed(fit)
    assert len({stage_color("forced_flow"), stage_color("stage_5"), stage_color("stage_6")}) == 3
