"""The time-varying kernels against statsmodels' Markov switching regression (TVTP).

``statsmodels.tsa.regime_switching.markov_regression.MarkovRegression`` with ``exog_tvtp``
runs its own Hamilton filter. At FIXED parameters (univariate Gaussian, switching mean and
variance) its filtered probabilities and log-likelihood must equal ours once both sides
describe the same model. statsmodels' conventions (read from its source, 0.14/0.15):

- transition matrix ``P_sm[i, j, t] = Pr(s_t = i | s_{t-1} = j)`` (columns sum to 1), from a
  multinomial logit with the LAST regime as reference: parameter ``p[j->i].tvtp{c}`` is the
  coefficient of column c of ``exog_tvtp`` in the logit of ``Pr(s_t = i | s_{t-1} = j)``,
  i < k-1;
- the matrix of the move into observation t (t >= 1) uses row t of ``exog_tvtp``;
- before observation 0 the initial distribution ``pi`` is moved TWICE with ``P_sm[..., 0]``:
  the regression's conditional log-likelihoods are stored as ``(k, k, nobs)`` (the filter runs
  with order 1), so ``cy_hamilton_filter_log`` first builds the joint ``Pr(s_0, s_{-1})`` with
  one move and its first iteration applies the move of t = 0 once more. Hence ``Pr(s_0) =
  P_sm[..., 0] @ P_sm[..., 0] @ pi`` (checked below against statsmodels'
  ``predicted_marginal_probabilities[0]``). With "steady-state" initialisation ``pi`` is the
  stationary distribution of ``P_sm[..., 0]``, so the moves leave it unchanged; with "known"
  it is given.

So our ``log_trans[t-1] = log P_sm[:, :, t].T`` for t = 1..T-1 and ``log_init = log(pi @ P_0 @
P_0)`` in our row convention; our transition matrices are built here from the logit formula and
checked against statsmodels' ``regime_transition_matrix``.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from stressflow.models.numerics import kernels

sm_mr = pytest.importorskip("statsmodels.tsa.regime_switching.markov_regression")


def _problem(k, n_t, seed):
    """Data, tvtp covariates (a constant and two covariates) and parameters by name."""
    rng = np.random.default_rng(seed)
    covariates = np.c_[np.sin(np.arange(n_t) / 15.0), rng.normal(size=n_t)]
    exog_tvtp = np.c_[np.ones(n_t), covariates]
    mu = np.linspace(-2.0, 2.0, k)
    sigma = np.linspace(0.6, 1.5, k)
    y = mu[rng.integers(0, k, n_t)] + rng.normal(size=n_t)
    coef = {}  # logit coefficients: (from j, to i, covariate c)
    for j in range(k):
        for i in range(k - 1):
            base = 2.5 if i == j else -0.5
            coef[j, i] = np.r_[base, rng.normal(scale=1.0, size=2)]
    values = {f"p[{j}->{i}].tvtp{c}": coef[j, i][c] for (j, i) in coef for c in range(3)}
    values.update({f"const[{r}]": mu[r] for r in range(k)})
    values.update({f"sigma2[{r}]": sigma[r] ** 2 for r in range(k)})
    return y, exog_tvtp, mu, sigma, coef, values


def _our_transitions(coef, exog_tvtp, k):
    """``Pr(s_t = i | s_{t-1} = j)`` as ``P[t, j, i]`` (rows sum to 1), for every row t of
    ``exog_tvtp``: multinomial logit, last regime the reference."""
    n_t = exog_tvtp.shape[0]
    logits = np.zeros((n_t, k, k))
    for (j, i), b in coef.items():
        logits[:, j, i] = exog_tvtp @ b
    return logits - np.logaddexp.reduce(logits, axis=2, keepdims=True)


@pytest.mark.parametrize(("k", "init"), [(2, "steady-state"), (3, "steady-state"), (2, "known"),
                                         (3, "known")])
def test_filter_and_loglike_match_statsmodels_tvtp(k, init):
    n_t = 400
    y, exog_tvtp, mu, sigma, coef, values = _problem(k, n_t, seed=10 * k + (init == "known"))
    model = sm_mr.MarkovRegression(y, k_regimes=k, exog_tvtp=exog_tvtp, switching_variance=True)
    pi = np.linspace(1.0, 2.0, k) / np.linspace(1.0, 2.0, k).sum()
    if init == "known":
        model.initialize_known(pi)
    params = np.array([values[name] for name in model.param_names])
    assert len(params) == k * (k - 1) * 3 + 2 * k

    log_p = _our_transitions(coef, exog_tvtp, k)  # [t, from, to]
    p_sm = model.regime_transition_matrix(params)  # [to, from, t]
    assert p_sm.shape == (k, k, n_t)
    assert_allclose(np.exp(log_p), p_sm.transpose(2, 1, 0), rtol=1e-12, atol=1e-15)
    assert np.abs(np.diff(np.exp(log_p), axis=0)).max() > 0.1  # really time-varying

    if init == "steady-state":
        pi = model.initial_probabilities(params)
        assert_allclose(pi @ np.exp(log_p[0]), pi, rtol=1e-10)  # stationary under P_0
    prior_0 = pi @ np.exp(log_p[0]) @ np.exp(log_p[0])  # two moves (row 0) before obs. 0
    log_init = np.log(prior_0)
    log_lik = -0.5 * np.log(2 * np.pi * sigma**2) - 0.5 * ((y[:, None] - mu) / sigma) ** 2
    log_trans = log_p[1:]  # log_trans[t-1]: the move into observation t

    result = model.filter(params)
    assert_allclose(prior_0, result.predicted_marginal_probabilities[0], rtol=1e-12)
    filtered, log_norm = kernels.filter_probs(log_init, log_trans, log_lik)
    assert_allclose(filtered, result.filtered_marginal_probabilities, rtol=0, atol=1e-8)
    assert_allclose(log_norm.sum(), model.loglike(params), rtol=1e-10, atol=1e-8)
    assert_allclose(log_norm.sum(), result.llf, rtol=1e-10, atol=1e-8)
    assert_allclose(kernels.log_marginal(log_init, log_trans, log_lik), result.llf, rtol=1e-10,
                    atol=1e-8)
    # the time variation matters: statsmodels' constant-P answer (step 0's matrix) differs
    assert abs(kernels.log_marginal(log_init, log_p[0], log_lik) - result.llf) > 1e-3
