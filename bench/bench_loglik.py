"""Cost of one HMM log-likelihood + gradient evaluation: stressflow's Op against a scan peer.

The gradient of the marginal log-likelihood is the hot path of every NUTS step. This script
times, on the same simulated 4-stage data and in one run:

- ``stressflow``: the forward-backward Op (``stressflow.models.numerics.ops.hmm_logp``) inside
  the full PyMC model, compiled by nutpie's numba backend (what ``fit`` samples);
- ``stressflow TVTP ladder`` / ``logit``: the same model with covariate-driven transitions
  (two covariates; ``P_t`` from the ``ladder`` or the multinomial ``logit`` component, so the
  log density also forms ``log_trans[T-1, K, K]`` and its gradient);
- ``stressflow kernel``: the numba kernel alone (``kernels.logp_and_grad``), constant P;
- ``kernel, time-varying P``: the same kernel with one transition matrix per step,
  ``log_trans[T-1, K, K]`` (the constant matrix with per-step noise, rows renormalised);
- ``pytensor scan``: the same model with a normalised log-space forward pass written as a
  PyTensor ``scan`` and differentiated by PyTensor (the usual way to write an HMM in PyMC),
  compiled to numba as well;
- ``hmmlearn``: ``GaussianHMM.score`` + ``predict_proba`` at fixed parameters (forward-backward
  without a gradient; a point-estimate peer).

Usage::

    .venv/bin/python bench/bench_loglik.py [--sizes 1000 5000 20000 50000] [--out FILE]

It prints a Markdown table (milliseconds per evaluation, ratio to stressflow, and the ratio of
the time-varying kernel to the constant one) and writes it to ``bench/results/loglik.md``
unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from common import D, K, scan_model, simulate
from stressflow.models.numerics import kernels
from stressflow.models.pymc_model import build_model
from stressflow.models.spec import ModelSpec


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
        covs = pd.DataFrame(np.random.default_rng(2).normal(size=(n_t, 2)),
                            index=features.index, columns=["a", "b"])
        for model_name in ("ladder", "logit"):
            spec = ModelSpec(transition_model=model_name, transition_covariates=("a", "b"))
            fn, x = nutpie_logp(build_model(features, spec, covs))
            row[f"stressflow TVTP {model_name}"] = time_call(fn, x)
        rng = np.random.default_rng(1)
        ll = rng.normal(size=(n_t, K))
        li = np.full(K, -np.log(K))
        lt = np.log(np.full((K, K), 0.01) + np.eye(K) * 0.96)
        row["stressflow kernel"] = time_call(lambda a: kernels.logp_and_grad(*a), (li, lt, ll))
        lt_tv = lt + rng.normal(scale=0.1, size=(n_t - 1, K, K))
        lt_tv -= np.logaddexp.reduce(lt_tv, axis=2, keepdims=True)
        row["kernel, time-varying P"] = time_call(lambda a: kernels.logp_and_grad(*a),
                                                  (li, lt_tv, ll))
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
    table["time-varying / constant kernel"] = (table["kernel, time-varying P"]
                                               / table["stressflow kernel"])
    for model_name in ("ladder", "logit"):
        table[f"TVTP {model_name} / stressflow"] = (table[f"stressflow TVTP {model_name}"]
                                                    / table["stressflow"])
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
