"""Cost of one HMM log-likelihood + gradient evaluation: stressflow's Op against a scan peer.

The gradient of the marginal log-likelihood is the hot path of every NUTS step. This script
times, on the same simulated 4-stage data and in one run:

- ``stressflow``: the forward-backward Op (``stressflow.models.ops.hmm_logp``) inside the full
  PyMC model, compiled by nutpie's numba backend (what ``fit`` samples);
- ``stressflow kernel``: the numba kernel alone (``kernels.logp_and_grad``);
- ``pytensor scan``: the same model with a normalised log-space forward pass written as a
  PyTensor ``scan`` and differentiated by PyTensor (the usual way to write an HMM in PyMC),
  compiled to numba as well;
- ``hmmlearn``: ``GaussianHMM.score`` + ``predict_proba`` at fixed parameters (forward-backward
  without a gradient; a point-estimate peer).

Usage::

    .venv/bin/python bench/bench_loglik.py [--sizes 1000 5000 20000 50000] [--out FILE]

It prints a Markdown table (milliseconds per evaluation, ratio to stressflow) and writes it
to ``bench/results/loglik.md`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
from stressflow.models import dims, kernels
from stressflow.models.emissions import emission_loglik, masked_observations
from stressflow.models.stress_hmm import build_model

K, D = 4, 4


def simulate(n_t: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    trans = np.full((K, K), 0.01) + np.eye(K) * 0.96
    trans /= trans.sum(1, keepdims=True)
    states = np.zeros(n_t, dtype=int)
    for t in range(1, n_t):
        states[t] = rng.choice(K, p=trans[states[t - 1]])
    mu = np.linspace(-1.5, 1.5, K)[:, None] * np.ones(D)
    y = mu[states] + rng.normal(scale=0.6, size=(n_t, D))
    return pd.DataFrame(y, columns=list(dims.FEATURES),
                        index=pd.bdate_range("1990-01-01", periods=n_t))


def scan_model(features: pd.DataFrame) -> pm.Model:
    """The same priors and emissions with the forward pass as a differentiated ``scan``."""
    y0, mask = masked_observations(features.to_numpy())
    with pm.Model() as model:
        mu_order = pm.Normal("mu_order", 0, 2, shape=K,
                             transform=pm.distributions.transforms.ordered,
                             initval=np.linspace(-1.5, 1.5, K))
        mu_other = pm.Normal("mu_other", 0, 2, shape=(K, D - 1))
        mu = pt.concatenate([mu_other[:, :1], mu_order[:, None], mu_other[:, 1:]], axis=1)
        sigma = pm.Gamma("sigma", 2, 2, shape=(K, D))
        trans = pm.Dirichlet("P", a=np.ones((K, K)) + 20 * np.eye(K))
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


def time_call(fn, x, min_time: float = 1.0) -> float:
    fn(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time:
        fn(x)
        n += 1
    return (time.perf_counter() - t0) / n * 1e3


def nutpie_logp(model):
    import nutpie

    compiled = nutpie.compile_pymc_model(model)
    return compiled.logp_func, compiled.initial_point_func(0)


def bench(sizes) -> pd.DataFrame:
    from hmmlearn.hmm import GaussianHMM

    rows = []
    for n_t in sizes:
        features = simulate(n_t)
        row = {"T": n_t}
        fn, x = nutpie_logp(build_model(features))
        row["stressflow"] = time_call(fn, x)
        rng = np.random.default_rng(1)
        ll = rng.normal(size=(n_t, K))
        li = np.full(K, -np.log(K))
        lt = np.log(np.full((K, K), 0.01) + np.eye(K) * 0.96)
        row["stressflow kernel"] = time_call(lambda a: kernels.logp_and_grad(*a), (li, lt, ll))
        try:
            fn, x = nutpie_logp(scan_model(features))
            row["pytensor scan"] = time_call(fn, x)
        except Exception as exc:  # report, don't hide, a peer that fails to build
            print(f"pytensor scan peer failed at T={n_t}: {exc!r}")
            row["pytensor scan"] = np.nan
        hmm = GaussianHMM(K, covariance_type="diag", init_params="", params="")
        hmm.startprob_ = np.full(K, 1 / K)
        hmm.transmat_ = np.exp(lt) / np.exp(lt).sum(1, keepdims=True)
        hmm.means_ = np.linspace(-1.5, 1.5, K)[:, None] * np.ones(D)
        hmm.covars_ = np.full((K, D), 0.36)
        y = features.to_numpy()
        row["hmmlearn (no gradient)"] = time_call(
            lambda a: (a[0].score(a[1]), a[0].predict_proba(a[1])), (hmm, y)
        )
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows).set_index("T")
    for col in ["pytensor scan", "hmmlearn (no gradient)"]:
        table[f"{col} / stressflow"] = table[col] / table["stressflow"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000, 50000])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "loglik.md"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    table = bench(args.sizes)
    text = (
        "Milliseconds per log-likelihood + gradient evaluation (K = 4 stages, D = 4 features), "
        "and the ratio of each peer's time to stressflow's in the same run.\n\n"
        + table.round(3).to_markdown() + "\n"
    )
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
