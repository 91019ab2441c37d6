"""Whole Bayesian fits: stressflow against its peers on the same simulated data, in one run.

For each series length T, every approach fits the same simulated 4-stage, 4-feature HMM
(:func:`common.simulate`) with the same priors, the same starting point
(:func:`common.common_start`), the same number of chains, tuning steps and draws:

============================  =================================================================
``stressflow``                ``stressflow.inference.fitting.fit`` of ``ModelSpec.base()`` (the
                              model the peers implement): forward-backward Op with its exact
                              gradient, nutpie (numba); a fresh process with the persistent
                              compile cache off (``STRESSFLOW_COMPILE_CACHE=0``), so it compiles
``stressflow cached``         the same fit in a fresh process after an earlier process (untimed)
                              compiled the same model: the persistent compile cache
                              (``stressflow.inference.fitting.compile_cache``) loads it
``stressflow warm``           the same fit after one earlier fit in the process (other data,
                              same options): the compiled log density is reused, as when
                              refitting many windows or assets
``pymc-extras marginalize``   ``DiscreteMarkovChain`` + ``pymc_extras.marginalize``, PyMC NUTS
``pymc scan``                 forward pass as a differentiated PyTensor ``scan``, PyMC NUTS
``nutpie numba scan``         the same ``scan`` model, nutpie with its numba backend
``nutpie jax scan``           the same ``scan`` model, nutpie with its JAX backend
``pymc numpyro scan``         the same ``scan`` model, ``pm.sample(nuts_sampler="numpyro")``
``numpyro direct``            a NumPyro model written directly, ``lax.scan`` forward pass
``hmmlearn EM``               ``GaussianHMM.fit`` (point estimate, not Bayesian; time only)
============================  =================================================================

Each run is a separate process, so peak memory (max RSS) is its own. Reported per run:
compile time (where the sampler separates it), sampling time, whole wall time, min bulk ESS and
max R-hat over every parameter (``mu``, ``sigma``, ``P``), divergences, peak memory, ESS per
wall-second of the whole fit, and the ratio of stressflow's ESS per wall-second to the peer's.

Usage (peers live in their own environment: ``bash bench/setup`` creates ``.venv-bench``)::

    .venv-bench/bin/python bench/bench_fit.py [--sizes 1000 5000 20000] [--peers ...]
        [--chains 2 --tune 500 --draws 500] [--timeout 900] [--out bench/results/fit.md]

The machine's cores are shared between chains (``cores = min(chains, cpu_count)``) by every
sampler alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
PEERS = (
    "stressflow",
    "stressflow cached",
    "stressflow warm",
    "pymc-extras marginalize",
    "pymc scan",
    "nutpie numba scan",
    "nutpie jax scan",
    "pymc numpyro scan",
    "numpyro direct",
    "hmmlearn EM",
)
PARAMS = ("mu", "sigma", "P")


# --------------------------------------------------------------------------------------------
# one run (in a worker process)
# --------------------------------------------------------------------------------------------


def _diagnostics(posterior) -> dict:
    import arviz as az

    names = [p for p in PARAMS if p in posterior]
    ds = posterior[names]
    ess = az.ess(ds, method="bulk")
    rhat = az.rhat(ds)

    def extreme(tree, fn):
        vals = np.concatenate([np.ravel(tree[v].values) for v in tree.data_vars])
        vals = vals[np.isfinite(vals)]
        return float(fn(vals))

    return {"min_ess_bulk": extreme(ess, np.min), "max_rhat": extreme(rhat, np.max)}


def _posterior_with_mu(idata_posterior):
    """Peers sample ``mu_order``/``mu_other``: rebuild ``mu`` so every run is judged alike."""
    post = idata_posterior
    if "mu" not in post and "mu_order" in post:
        order = post["mu_order"].values[..., :, None]
        other = post["mu_other"].values
        mu = np.concatenate([other[..., :1], order, other[..., 1:]], axis=-1)
        post = post.assign(mu=(("chain", "draw", "mu_dim_0", "mu_dim_1"), mu))
    return post


def _divergences(stats) -> int:
    for name in ("diverging", "divergences"):
        if name in stats:
            return int(np.asarray(stats[name]).sum())
    return 0


def _to_dataset(group):
    return group.to_dataset() if hasattr(group, "to_dataset") else group


def _prepared(features):
    from stressflow.data import DataReport, FeatureTransform, PreparedData

    names = tuple(str(c) for c in features.columns)
    transform = FeatureTransform(features=names, center=(0.0,) * len(names),
                                 scale=(1.0,) * len(names))
    prices = pd.DataFrame({"close": np.full(len(features), 100.0)},
                          index=pd.DatetimeIndex(features.index, name="date"))
    report = DataReport(start=features.index[0], end=features.index[-1],
                        n_rows=len(features), spread_source="simulated",
                        n_missing={c: 0 for c in names})
    return PreparedData(features=features, raw=features, prices=prices, transform=transform,
                        report=report)


def worker(peer: str, n_t: int, chains: int, tune: int, draws: int, seed: int) -> dict:
    """Fit once and return the measurements (called in a fresh process)."""
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(HERE))
    from common import bench_spec, common_start, marginalized_model, scan_model, simulate

    features = simulate(n_t, seed=seed)
    start = common_start(features, seed)
    cores = min(chains, os.cpu_count() or 1)
    out = {"compile_s": np.nan}
    t_all = time.perf_counter()

    if peer.startswith("stressflow"):
        from stressflow.inference import check_fit, fit

        if peer == "stressflow warm":  # compile on other data of another length, untimed
            fit(_prepared(simulate(max(n_t // 2, 200), seed=seed + 1)), spec=bench_spec(),
                chains=1, draws=5, tune=5, seed=seed, pointwise_loglik=False)
            t_all = time.perf_counter()
        res = fit(_prepared(features), spec=bench_spec(), chains=chains, tune=tune,
                  draws=draws, seed=seed, pointwise_loglik=False)
        tm = json.loads(res.attrs["timings"])
        out["compile_s"] = tm["compile"] + tm["build"]
        out["sampling_s"] = tm["sampling"]
        out["postprocess_s"] = tm["postprocess"]
        out["compile_disk"] = tm.get("compile_disk", 0.0)
        diag = check_fit(res, warn=False)
        out.update(min_ess_bulk=diag.min_ess_bulk, max_rhat=diag.max_rhat,
                   divergences=diag.divergences)
    elif peer == "hmmlearn EM":
        from hmmlearn.hmm import GaussianHMM

        t0 = time.perf_counter()
        GaussianHMM(4, covariance_type="diag", n_iter=200, random_state=seed).fit(
            features.to_numpy())
        out["sampling_s"] = time.perf_counter() - t0
        out.update(min_ess_bulk=np.nan, max_rhat=np.nan, divergences=0)
    elif peer in ("pymc-extras marginalize", "pymc scan", "pymc numpyro scan"):
        import pymc as pm

        model = (marginalized_model if peer.startswith("pymc-extras") else scan_model)(features)
        init = {k: v for k, v in start.items() if k in model.named_vars}
        kwargs = {"nuts_sampler": "numpyro"} if "numpyro" in peer else {}
        t0 = time.perf_counter()
        with model:
            idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores,
                              random_seed=seed, initvals=init, progress_bar=False,
                              compute_convergence_checks=False, **kwargs)
        out["sampling_s"] = time.perf_counter() - t0  # includes PyMC's compile
        post = _posterior_with_mu(_to_dataset(idata["posterior"]))
        out.update(_diagnostics(post))
        out["divergences"] = _divergences(_to_dataset(idata["sample_stats"]))
    elif peer in ("nutpie numba scan", "nutpie jax scan"):
        import nutpie

        model = scan_model(features)
        t0 = time.perf_counter()
        backend = "jax" if "jax" in peer else "numba"
        kw = {"gradient_backend": "jax"} if backend == "jax" else {}
        compiled = nutpie.compile_pymc_model(model, backend=backend, initial_points=start,
                                             **kw)
        out["compile_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        trace = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores,
                              seed=seed, progress_bar=False)
        out["sampling_s"] = time.perf_counter() - t0
        post = _posterior_with_mu(_to_dataset(trace["posterior"]))
        out.update(_diagnostics(post))
        out["divergences"] = _divergences(_to_dataset(trace["sample_stats"]))
    elif peer == "numpyro direct":
        out.update(_numpyro_direct(features, start, chains, tune, draws, seed))
    else:
        raise ValueError(f"unknown peer {peer!r}; choose from {PEERS}")
    out["wall_s"] = time.perf_counter() - t_all
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return out


def _numpyro_direct(features, start, chains, tune, draws, seed) -> dict:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from common import STICKINESS, K
    from numpyro.infer import MCMC, NUTS, init_to_value

    y = jnp.asarray(features.to_numpy())
    conc = np.ones((K, K)) + STICKINESS * np.eye(K)

    def model(y):
        mu_order = numpyro.sample(
            "mu_order", dist.ImproperUniform(dist.constraints.ordered_vector, (), (K,)))
        numpyro.factor("mu_order_prior", dist.Normal(0.0, 2.0).log_prob(mu_order).sum())
        mu_other = numpyro.sample("mu_other", dist.Normal(0.0, 2.0).expand([K, 3]).to_event(2))
        mu = jnp.concatenate([mu_other[:, :1], mu_order[:, None], mu_other[:, 1:]], axis=1)
        sigma = numpyro.sample("sigma", dist.Gamma(2.0, 2.0).expand([K, 4]).to_event(2))
        trans = numpyro.sample("P", dist.Dirichlet(jnp.asarray(conc)).to_event(1))
        log_lik = dist.Normal(mu[None], sigma[None]).log_prob(y[:, None, :]).sum(-1)
        log_trans = jnp.log(trans)

        def step(log_alpha, ll_t):
            la = jax.nn.logsumexp(log_alpha[:, None] + log_trans, axis=0) + ll_t
            norm = jax.nn.logsumexp(la)
            return la - norm, norm

        first = log_lik[0] - jnp.log(K)
        first_norm = jax.nn.logsumexp(first)
        _, norms = jax.lax.scan(step, first - first_norm, log_lik[1:])
        numpyro.factor("hmm", first_norm + norms.sum())

    init = {k: jnp.asarray(v) for k, v in start.items()}
    kernel = NUTS(model, init_strategy=init_to_value(values=init))
    mcmc = MCMC(kernel, num_warmup=tune, num_samples=draws, num_chains=chains,
                chain_method="parallel", progress_bar=False)
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), y, extra_fields=("diverging",))
    # JAX dispatches asynchronously: wait for the draws before stopping the clock
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    sampling = time.perf_counter() - t0  # includes JAX's tracing and XLA compilation
    import arviz as az

    post = az.from_dict({"posterior": {k: np.asarray(v) for k, v in samples.items()}})
    post = _posterior_with_mu(_to_dataset(post["posterior"]))
    div = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    return {"sampling_s": sampling, "divergences": div, **_diagnostics(post)}


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


def run_one(peer, n_t, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", peer, str(n_t),
           "--chains", str(args.chains), "--tune", str(args.tune), "--draws", str(args.draws),
           "--seed", str(args.seed)]
    env = dict(os.environ)
    # NumPyro runs chains in parallel only over several host devices
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.chains}"
    # "stressflow" compiles in its process as before the persistent cache existed
    env["STRESSFLOW_COMPILE_CACHE"] = "0" if peer == "stressflow" else "1"
    if peer == "stressflow cached":  # an earlier process compiles and saves (untimed)
        subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env,
                       check=False)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout > {args.timeout} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"status": f"failed: {tail[0][:120]}"}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["status"] = "ok"
    row["process_s"] = time.perf_counter() - t0
    return row


def bench(args) -> pd.DataFrame:
    rows = []
    for n_t in args.sizes:
        for peer in args.peers:
            row = {"T": n_t, "approach": peer, **run_one(peer, n_t, args)}
            print(json.dumps(row, default=float), flush=True)
            rows.append(row)
    table = pd.DataFrame(rows)
    table["ess_per_s"] = table["min_ess_bulk"] / table["wall_s"]
    for name, col in (("stressflow", "stressflow_ess_per_s_ratio"),
                      ("stressflow cached", "cached_ess_per_s_ratio"),
                      ("stressflow warm", "warm_ess_per_s_ratio")):
        ref = table[table["approach"] == name].set_index("T")["ess_per_s"]
        if len(ref):
            table[col] = table["T"].map(ref) / table["ess_per_s"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("PEER", "T"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=PEERS)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds before a run is stopped and reported as a timeout")
    parser.add_argument("--out", default=str(HERE / "results" / "fit.md"))
    args = parser.parse_args()
    if args.worker:
        peer, n_t = args.worker
        res = worker(peer, int(n_t), args.chains, args.tune, args.draws, args.seed)
        print(json.dumps(res, default=float))
        return
    table = bench(args)
    cols = ["T", "approach", "status", "compile_s", "sampling_s", "wall_s", "min_ess_bulk",
            "ess_per_s", "stressflow_ess_per_s_ratio", "cached_ess_per_s_ratio",
            "warm_ess_per_s_ratio", "max_rhat",
            "divergences", "peak_rss_gb"]
    cols = [c for c in cols if c in table]
    text = (
        f"Whole fits, {args.chains} chains x {args.tune} tune x {args.draws} draws, "
        f"same simulated data, priors and start for every approach; {os.cpu_count()} cores.\n"
        "`ess_per_s` = min bulk ESS / whole wall time (compile included); "
        "`stressflow_ess_per_s_ratio` = stressflow's ess_per_s / the approach's, same T "
        "(`cached_`: stressflow in a fresh process that loads its compiled density from the "
        "persistent cache; `warm_`: stressflow reusing it within the process).\n\n"
        + table[cols].round(3).to_markdown(index=False) + "\n"
    )
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    table.to_csv(out.with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()
