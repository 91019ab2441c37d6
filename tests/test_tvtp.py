"""Covariate-driven transition probabilities (TVTP): the components' formulas against
independent references (hand formulas, statsmodels' multinomial logit), the graph against the
NumPy evaluator, and the downstream functions on a fit with a time-varying P."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from stressflow.models import dims
from stressflow.models.evaluate import evaluate, evaluate_transitions, model_data
from stressflow.models.numerics import kernels
from stressflow.models.spec import ModelSpec, allowed_transitions
from stressflow.models.transitions import LogitTransitions

try:
    from tests.conftest import SIM_MU, SIM_P, SIM_SIGMA, make_prepared, simulate_stage_hmm
    from tests.fake_fit import fake_fit
except ImportError:  # pytest's rootdir-less "prepend" import of tests/test_*.py
    from conftest import SIM_MU, SIM_P, SIM_SIGMA, make_prepared, simulate_stage_hmm
    from fake_fit import fake_fit

K = len(dims.LADDER)


def _random_params(spec, rng, n_draws=None):
    lead = () if n_draws is None else (n_draws,)
    allowed = allowed_transitions(spec.transitions, K)
    trans = rng.dirichlet(np.ones(K) + 10 * np.eye(K)[0], size=(*lead, K))
    trans = np.where(allowed, trans, 0.0)
    trans /= trans.sum(axis=-1, keepdims=True)
    params = {"mu": rng.normal(size=(*lead, K, 4)), "sigma": rng.gamma(4, 0.25, (*lead, K, 4)),
              "P": trans}
    n_cov = len(spec.transition_covariates)
    if spec.transition_model == "ladder":
        params["gamma"] = rng.normal(size=(*lead, n_cov))
    elif spec.transition_model == "logit":
        rows, cols = LogitTransitions.free_moves(spec)
        beta = np.zeros((*lead, n_cov, K, K))
        beta[..., rows, cols] = rng.normal(size=(*lead, n_cov, len(rows)))
        params["beta"] = beta
    return params


def _hand_ladder(trans, gamma, z_prev):
    """log P_t from the ladder formula written out entry by entry."""
    out = np.empty((len(z_prev), K, K))
    for t, z in enumerate(z_prev):
        g = float(np.dot(gamma, z))
        for i in range(K):
            w = np.array([trans[i, j] * np.exp(np.sign(j - i) * g) for j in range(K)])
            out[t, i] = np.log(w / w.sum())
    return out


@pytest.mark.parametrize("structure", ["full", "sequential"])
def test_ladder_matches_the_written_formula_and_moves_stress_up(structure):
    rng = np.random.default_rng(1)
    spec = ModelSpec.base(transitions=structure, transition_model="ladder",
                     transition_covariates=("a", "b"))
    params = _random_params(spec, rng)
    z = rng.normal(size=(30, 2))
    got = evaluate_transitions(spec, params, z)
    assert got.shape == (29, K, K)
    with np.errstate(divide="ignore"):
        assert_allclose(np.exp(got), np.exp(_hand_ladder(params["P"], params["gamma"], z[:-1])),
                        rtol=1e-12, atol=1e-300)
    assert_allclose(np.exp(got).sum(axis=-1), 1.0, atol=1e-12)
    # a larger push g = gamma . z raises every up-move's probability against staying
    params["gamma"] = np.array([1.0, 0.0])
    lo, hi = (np.exp(evaluate_transitions(spec, params, np.array([[v, 0.0], [0.0, 0.0]])))[0]
              for v in (-1.0, 1.0))
    up = np.triu(allowed_transitions(structure, K), 1)
    assert np.all((hi / np.diag(hi)[:, None])[up] > (lo / np.diag(lo)[:, None])[up])


@pytest.mark.parametrize("model", ["ladder", "logit"])
def test_zero_coefficients_give_the_constant_model(model):
    rng = np.random.default_rng(2)
    spec = ModelSpec.base(transition_model=model, transition_covariates=("a",))
    params = _random_params(spec, rng, n_draws=3)
    for name in ("gamma", "beta"):
        if name in params:
            params[name] = np.zeros_like(params[name])
    y = rng.normal(size=(40, 4))
    z = rng.normal(size=(40, 1))
    _, lt, ll = evaluate(spec, params, model_data(spec, y, z))
    _, lt0, ll0 = evaluate(ModelSpec.base(), {k: params[k] for k in ("mu", "sigma", "P")},
                           model_data(ModelSpec.base(), y))
    assert lt.shape == (3, 39, K, K) and lt0.shape == (3, K, K)
    assert_allclose(lt, np.broadcast_to(lt0[:, None], lt.shape), rtol=1e-12)
    assert_allclose(ll, ll0, rtol=1e-12)


def test_logit_equals_statsmodels_multinomial_logit():
    """statsmodels' TVTP transition matrix (last regime as the reference, columns = from) at
    the parameters equivalent to ours gives the same P_t."""
    sm_ms = pytest.importorskip("statsmodels.tsa.regime_switching.markov_regression")
    rng = np.random.default_rng(3)
    k, n_cov = K, 2
    spec = ModelSpec.base(transition_model="logit", transition_covariates=("a", "b"))
    z = np.column_stack([np.ones(25), rng.normal(size=(25, n_cov))])  # statsmodels: constant
    trans = rng.dirichlet(np.ones(k) + 5 * np.eye(k)[0], size=k)
    beta = np.zeros((n_cov, k, k))
    off = ~np.eye(k, dtype=bool)
    beta[:, off] = rng.normal(size=(n_cov, off.sum()))
    comp = LogitTransitions()
    ours = comp.log_trans(spec, {"P": trans, "beta": beta}, {"z": z[:, 1:]})  # (24, k, k)
    # our log-odds of j against staying in i: log(P[i,j]/P[i,i]) + beta[:, i, j] . z
    # statsmodels: log-odds of j against the last regime k-1, for j = 0..k-2:
    # eta_ij - eta_i,k-1, with intercept on the constant column
    endog = rng.normal(size=25)
    mod = sm_ms.MarkovRegression(endog, k_regimes=k, exog_tvtp=z)
    params = np.zeros(mod.k_params)
    names = mod.param_names
    for i in range(k):
        for j in range(k - 1):
            icpt = np.log(trans[i, j] / trans[i, k - 1])
            coef = beta[:, i, j] - beta[:, i, k - 1]
            params[names.index(f"p[{i}->{j}].tvtp0")] = icpt
            for c in range(n_cov):
                params[names.index(f"p[{i}->{j}].tvtp{c + 1}")] = coef[c]
    sm_trans = mod.regime_transition_matrix(params, exog_tvtp=z)  # (k, k, T): [to, from, t]
    # statsmodels' row t of exog_tvtp gives the matrix of the move into t; ours uses z_{t-1}
    assert_allclose(np.exp(ours), np.transpose(sm_trans[:, :, :-1], (2, 1, 0)), rtol=1e-10)


def test_graph_log_density_equals_numpy_evaluator_and_kernels():
    """The PyMC potential (the HMM log-likelihood of the graph) at a random point equals the
    kernels' marginal likelihood of the NumPy evaluator's outputs at the same parameters."""
    import pymc as pm
    from stressflow.models.pymc_model import build_model

    features, _ = simulate_stage_hmm(120, seed=4, n_missing=5)
    rng = np.random.default_rng(4)
    covs = pd.DataFrame(rng.normal(size=(120, 2)), index=features.index, columns=["a", "b"])
    for model_name in ("ladder", "logit"):
        spec = ModelSpec.base(transitions="sequential", transition_model=model_name,
                         transition_covariates=("a", "b"))
        model = build_model(features, spec, covs)
        point = model.initial_point()
        for name in point:
            point[name] = point[name] + rng.normal(0, 0.3, size=np.shape(point[name]))
        names = ["mu", "sigma", "P", "gamma" if model_name == "ladder" else "beta"]
        graph = model.replace_rvs_by_values([model[n] for n in [*names, "hmm_loglik"]])
        fn = pm.compile(model.value_vars, graph, on_unused_input="ignore")
        outs = fn(*[point[v.name] for v in model.value_vars])
        values = dict(zip(names, outs[:-1], strict=True))
        hmm = outs[-1]
        log_init, log_trans, log_lik = evaluate(spec, values, model_data(spec, features, covs))
        assert log_trans.shape == (119, K, K)
        assert_allclose(hmm, kernels.log_marginal(log_init, log_trans, log_lik), rtol=1e-10)


def test_time_varying_filter_equals_brute_force_recursion():
    """The evaluator + kernels agree with a plain NumPy forward recursion over P_t."""
    rng = np.random.default_rng(5)
    spec = ModelSpec.base(transition_model="ladder", transition_covariates=("a",))
    params = _random_params(spec, rng)
    y = rng.normal(size=(60, 4))
    z = rng.normal(size=(60, 1))
    log_init, log_trans, log_lik = evaluate(spec, params, model_data(spec, y, z))
    filt, log_norm = kernels.filter_probs(log_init, log_trans, log_lik)
    alpha = log_init + log_lik[0]  # log p(y_1..y_t, stage_t = k), by the plain recursion
    for t in range(60):
        if t:
            alpha = logsumexp(alpha[:, None] + log_trans[t - 1], axis=0) + log_lik[t]
        assert_allclose(filt[t], np.exp(alpha - logsumexp(alpha)), rtol=1e-10, atol=1e-15)
    assert_allclose(log_norm.sum(), logsumexp(alpha), rtol=1e-12)


@pytest.fixture(scope="module")
def sim_tvtp():
    """A 1,500-day simulation whose moves up the ladder follow one covariate (gamma = 1.2)."""
    rng = np.random.default_rng(6)
    n = 1500
    spec = ModelSpec.base(transition_model="ladder", transition_covariates=("funding",))
    z = np.convolve(rng.normal(size=n + 30), np.ones(30) / np.sqrt(30), "valid")[:n, None]
    params = {"mu": np.asarray(SIM_MU), "sigma": np.asarray(SIM_SIGMA),
              "P": np.asarray(SIM_P), "gamma": np.array([1.2])}
    trans = np.exp(evaluate_transitions(spec, params, z))
    path = np.empty(n, dtype=np.int64)
    path[0] = 0
    for t in range(1, n):
        path[t] = rng.choice(K, p=trans[t - 1, path[t - 1]])
    y = params["mu"][path] + params["sigma"][path] * rng.standard_normal((n, 4))
    index = pd.bdate_range("2001-01-01", periods=n, name=dims.TIME)
    features = pd.DataFrame(y, index=index, columns=pd.Index(dims.FEATURES, name=dims.FEATURE))
    covs = pd.DataFrame(z, index=index, columns=pd.Index(["funding"], name=dims.COVARIATE))
    return spec, features, covs, path, params


@pytest.mark.filterwarnings("ignore::stressflow.inference.FitWarning")
def test_ladder_coefficient_is_recovered_from_simulated_data(sim_tvtp):
    """NUTS on 1,500 simulated days: the 90% interval of gamma covers the true 1.2 and excludes
    0, and the stage means are recovered."""
    from stressflow.inference import fit

    spec, features, covs, _, truth = sim_tvtp
    prepared = dataclasses.replace(make_prepared(features), covariates=covs,
                                   raw_covariates=covs)
    res = fit(prepared, spec=spec, chains=2, draws=400, tune=600, seed=3)
    gamma = res["posterior"]["gamma"].values.reshape(-1)
    lo, hi = np.quantile(gamma, [0.05, 0.95])
    assert lo < truth["gamma"][0] < hi and lo > 0, (lo, hi)
    mu = res["posterior"]["mu"].mean((dims.CHAIN, dims.DRAW)).values
    assert np.abs(mu - truth["mu"]).max() < 0.25
    assert res["posterior"]["gamma"].dims == (dims.CHAIN, dims.DRAW, dims.COVARIATE)
    assert list(res["observed_data"]["covariates"][dims.COVARIATE].values) == ["funding"]


# --------------------------------------------------------------------------------------------
# downstream on a fit with a time-varying P (real S&P 500 with bundled covariates)
# --------------------------------------------------------------------------------------------

COVS = ("vix", "low_vol")


@pytest.fixture(scope="module")
def tv_fit():
    from stressflow.data import prepare

    # 2002-01 .. 2008-06 stores more than the 1,512 rows low_vol's windows need
    prepared = prepare("sp500", start="2002-01-01", end="2008-06-30",
                       transition_covariates=COVS)
    spec = ModelSpec.base(transition_model="ladder", transition_covariates=COVS)
    mu = np.asarray(SIM_MU) * 0.8
    return fake_fit(prepared, mu, np.asarray(SIM_SIGMA) * 2, np.asarray(SIM_P), spec=spec,
                    gamma=[0.6, 0.3], n_chains=2, n_draws=8), prepared


def test_tv_fit_stores_covariates_and_reports_coefficients(tv_fit, tmp_path):
    from stressflow.inference import load_fit, save_fit, summary
    from stressflow.inference.postprocess.summaries import transition_coefficients

    fit, prepared = tv_fit
    cov = fit["observed_data"]["covariates"].transpose(dims.TIME, dims.COVARIATE)
    assert_allclose(cov.values, prepared.covariates[list(COVS)].to_numpy())
    table = transition_coefficients(fit)
    assert list(table[dims.COVARIATE]) == list(COVS)
    assert np.all(table["mean"].to_numpy() > 0)
    assert "Transition coefficients (ladder" in summary(fit)
    again = load_fit(save_fit(fit, tmp_path / "tv.nc"))
    assert_allclose(again["stages"]["smoothed"].values, fit["stages"]["smoothed"].values)


def test_tv_update_equals_filtering_the_whole_series(tv_fit):
    """update() continues the time-varying filter exactly: the same as filtering 2002..2009-06
    from the start with the stored draws, the covariates on the stored transform's scale."""
    from stressflow.data import prepare, read_prices
    from stressflow.inference import update
    from stressflow.inference.postprocess.stages import stage_probabilities
    from stressflow.inference.schema import chain_of_draw, posterior_params
    from stressflow.models.evaluate import evaluate_draws

    fit, prepared = tv_fit
    prices = read_prices("sp500")
    new = prices[(prices.index > "2008-06-30") & (prices.index <= "2009-06-30")]
    updated = update(fit, new)
    whole = prepare("sp500", start="2002-01-01", end="2009-06-30", transform=prepared.transform)
    assert_allclose(updated["observed_data"]["covariates"].values, whole.covariates.to_numpy(),
                    rtol=0, atol=1e-12)
    spec = ModelSpec.base(transition_model="ladder", transition_covariates=COVS)
    params, shape = posterior_params(fit["posterior"], spec)
    data = model_data(spec, whole.features, whole.covariates)
    ref = stage_probabilities(lambda lo, hi: evaluate_draws(spec, params, data, lo, hi),
                              shape[0] * shape[1], (len(whole.features), K),
                              chain_of_draw(shape))
    assert_allclose(updated["stages"]["filtered"].values, ref.filtered_mean, rtol=0, atol=1e-10)


def test_tv_forecast_and_durations_follow_the_covariates(tv_fit):
    from stressflow.inference import expected_durations, forecast
    from stressflow.inference.schema import posterior_params

    fit, _ = tv_fit
    held = forecast(fit, 20)
    assert_allclose(held[list(dims.LADDER)].sum(axis=1), 1.0, atol=1e-12)
    calm_path = np.full((19, 2), -2.0)
    calm = forecast(fit, 20, covariate_path=calm_path)
    # gamma > 0: low covariates move stress down the ladder, so forced flow is less likely
    assert calm["p_enter_forced_flow"].iloc[-1] < held["p_enter_forced_flow"].iloc[-1]
    with pytest.raises(ValueError, match="covariate_path"):
        forecast(fit, 20, covariate_path=np.zeros((3, 2)))
    spec = ModelSpec.base(transition_model="ladder", transition_covariates=COVS)
    params, _ = posterior_params(fit["posterior"], spec)
    z = np.array([1.5, -0.5])
    by_hand = np.array([_hand_ladder(params["P"][s], params["gamma"][s], z[None])[0]
                        for s in range(len(params["P"]))])
    stay = np.exp(np.diagonal(by_hand, axis1=1, axis2=2))
    got = expected_durations(fit, covariates={"vix": 1.5, "low_vol": -0.5})
    assert_allclose(got["mean"].to_numpy(), (1 / (1 - stay)).mean(axis=0), rtol=1e-10)
    at_zero = expected_durations(fit)
    assert_allclose(expected_durations(fit, covariates=[0.0, 0.0])["mean"], at_zero["mean"],
                    rtol=1e-10)
    with pytest.raises(ValueError, match="give a value for each"):
        expected_durations(fit, covariates={"vix": 1.0})


def test_tv_paths_and_episodes_run_on_the_time_varying_fit(tv_fit):
    from stressflow.inference import sample_stage_paths
    from stressflow.inference.apps.episodes import episodes

    fit, _ = tv_fit
    paths = sample_stage_paths(fit, n_draws=4, paths_per_draw=5, seed=1)
    assert paths.shape == (20, fit["stages"].sizes[dims.TIME])
    table = episodes(fit, paths=paths)
    assert len(table)
    # oracle: the share of paths with forced flow on at least half of each episode's days
    times = pd.DatetimeIndex(fit["stages"][dims.TIME].values)
    ff = list(fit["stages"][dims.STAGE].values).index("forced_flow")
    for _, ep in table.iterrows():
        days = np.flatnonzero((times >= ep["start"]) & (times <= ep["end"]))
        assert ep["n_days"] == days.size
        hand = ((paths.values[:, days] == ff).sum(axis=1) >= 0.5 * days.size).mean()
        assert ep["p_compulsion"] == pytest.approx(hand)


def test_stage_duration_prior_sets_the_prior_mode_of_each_stay_probability():
    """With durations d_k the Dirichlet mode of P[k, k] is 1 - 1/d_k (sequential structure:
    the pseudo-counts of the moves are spread over the allowed ones only)."""
    from stressflow.models.transitions import dirichlet_concentration

    durations = (250.0, 120.0, 20.0, 6.0)
    for structure in ("full", "sequential"):
        spec = ModelSpec.base(transitions=structure, stage_durations=durations,
                         duration_strength=200.0)
        allowed = allowed_transitions(structure, K)
        conc = dirichlet_concentration(spec)
        assert np.all(conc[allowed] >= 1.0)
        excess = np.where(allowed, conc - 1.0, 0.0)
        mode = excess / excess.sum(axis=1, keepdims=True)
        assert_allclose(np.diag(mode), 1.0 - 1.0 / np.asarray(durations), rtol=1e-12)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="stage_durations"):
        ModelSpec.base(stage_durations=(10.0, 5.0))
    with pytest.raises(ValueError, match="stage_durations"):
        ModelSpec.base(stage_durations=(10.0, 5.0, 1.0, 3.0))
