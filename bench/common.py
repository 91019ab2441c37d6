"""Shared pieces of the benchmarks: simulated data, the PyTensor ``scan`` peer model, and the
common starting point given to every sampler.

Every benchmark generates its data here, from a seed, so stressflow and each peer see exactly
the same numbers in one run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
from stressflow.models import dims
from stressflow.models.emissions import emission_loglik, masked_observations

K, D = 4, 4
#: Diagonal of the simulated transition matrix (the rest of each row is spread evenly).
STAY = 0.97
STICKINESS = 20.0


def simulate(n_t: int, seed: int = 0) -> pd.DataFrame:
    """A sticky 4-stage Gaussian HMM, K = 4 stages, D = 4 features, business-day index.

    Stage means increase on every feature (``linspace(-1.5, 1.5)``), sd 0.6, ``P[k, k]`` =
    :data:`STAY`.
    """
    rng = np.random.default_rng(seed)
    trans = np.full((K, K), (1 - STAY) / (K - 1))
    np.fill_diagonal(trans, STAY)
    states = np.zeros(n_t, dtype=int)
    u = rng.random(n_t)
    cum = trans.cumsum(1)
    for t in range(1, n_t):
        states[t] = min(int(np.searchsorted(cum[states[t - 1]], u[t])), K - 1)
    mu = np.linspace(-1.5, 1.5, K)[:, None] * np.ones(D)
    y = mu[states] + rng.normal(scale=0.6, size=(n_t, D))
    return pd.DataFrame(y, columns=list(dims.FEATURES),
                        index=pd.bdate_range("1990-01-01", periods=n_t, name=dims.TIME))


def _priors(features: pd.DataFrame):
    """The stressflow priors (see stressflow.models.pymc_model), volatility ordered."""
    # no initval here: pymc-extras' marginalize refuses models with non-default initial
    # values; every sampler gets the common start instead
    mu_order = pm.Normal("mu_order", 0, 2, shape=K,
                         transform=pm.distributions.transforms.ordered)
    mu_other = pm.Normal("mu_other", 0, 2, shape=(K, D - 1))
    mu = pt.concatenate([mu_other[:, :1], mu_order[:, None], mu_other[:, 1:]], axis=1)
    sigma = pm.Gamma("sigma", 2, 2, shape=(K, D))
    trans = pm.Dirichlet("P", a=np.ones((K, K)) + STICKINESS * np.eye(K))
    return mu, sigma, trans


def scan_model(features: pd.DataFrame) -> pm.Model:
    """The same priors and emissions with the forward pass as a differentiated ``scan``."""
    y0, mask = masked_observations(features.to_numpy())
    with pm.Model() as model:
        mu, sigma, trans = _priors(features)
        log_lik = emission_loglik(pt.constant(y0), pt.constant(mask), mu, sigma, xp=pt)
        log_trans = pt.log(trans)

        def step(ll_t, log_alpha, log_trans):
            la = pt.logsumexp(log_alpha[:, None] + log_trans, axis=0) + ll_t
            norm = pt.logsumexp(la)
            return la - norm, norm

        first = log_lik[0] - np.log(K)
        first_norm = pt.logsumexp(first)
        (_, norms), _ = pytensor.scan(step, sequences=[log_lik[1:]],
                                      outputs_info=[first - first_norm, None],
                                      non_sequences=[log_trans], return_updates=True)
        pm.Potential("hmm", first_norm + norms.sum())
    return model


def marginalized_model(features: pd.DataFrame) -> pm.Model:
    """pymc-extras: an explicit ``DiscreteMarkovChain`` of stages, marginalised out."""
    from pymc_extras import marginalize
    from pymc_extras.distributions import DiscreteMarkovChain

    y = features.to_numpy()
    with pm.Model() as model:
        mu, sigma, trans = _priors(features)
        init = pm.Categorical.dist(p=np.full(K, 1.0 / K))
        stage = DiscreteMarkovChain("stage", P=trans, init_dist=init, steps=len(y) - 1)
        pm.Normal("y", mu=mu[stage], sigma=sigma[stage], observed=y)
    return marginalize(model, ["stage"])


def bench_spec():
    """The stressflow model the peers implement: ``ModelSpec.base()`` (four stages ordered on
    volatility, full P with stickiness 20 on the diagonal, Gaussian emissions, the priors of
    :func:`_priors`)."""
    from stressflow.models.spec import ModelSpec

    return ModelSpec.base()


def common_start(features: pd.DataFrame, seed: int = 0) -> dict[str, np.ndarray]:
    """The starting point every sampler gets: stressflow's EM start of :func:`bench_spec`."""
    from stressflow.inference.fitting.initialize import em_start

    return em_start(features, bench_spec(), seed)


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table of ``frame``'s columns (index not included): floats to 3 decimals
    without trailing zeros and with thousands separators, NaN empty, dates ISO."""
    def cell(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:,.3f}".rstrip("0").rstrip(".")
        if isinstance(v, pd.Timestamp):
            return f"{v:%Y-%m-%d}"
        return str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(
        index=False)]
    return "\n".join(lines)
