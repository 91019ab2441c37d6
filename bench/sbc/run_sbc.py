"""Simulation-based calibration (Talts et al. 2018) of the default stage model.

Each simulation draws theta from the model's prior, simulates T days of observables from the
HMM with theta, fits them with :func:`stressflow.inference.fit` (same spec and length every
time, so nutpie's compiled density is reused) and records, for every scalar of ``mu`` (K x D),
``sigma`` (K x D) and ``P`` (K x K), the rank of the true value among L thinned posterior draws
(0..L). If the posterior is calibrated, each rank is uniform on 0..L.

The prior is the model's own: the free variables are forward-sampled from the PyMC model that
:func:`stressflow.models.pymc_model.build_model` makes for ``--model`` (``default``:
``ModelSpec()``, five stages, forced flow identified by the vol_surprise break, sequential P
with the framework duration prior; ``base``: ``ModelSpec.base()``, four stages ordered on
volatility, full sticky P), the ordered stage means sorted (forward sampling ignores the
ordered transform; sorting iid normals gives the density it imposes), and ``mu`` and ``P``
computed by the model's own deterministics. The first stage is uniform, as in the model. The
structural zeros of a sequential P have no rank and are left out.

Usage::

    PYTHONPATH=. python bench/sbc/run_sbc.py --model base --n-sims 200 --n-days 1000 \
        --out bench/results/sbc_ranks.csv
    PYTHONPATH=. python bench/sbc/plot_sbc.py bench/results/sbc_ranks.csv

Each simulation also appends its reliability record (:func:`reliability_rows`: per stage,
smoothed / filtered and probability bin, the days, the sum of the stage probabilities and the
days truly in that stage) to ``<out>_reliability.csv``, for the reliability diagram of the
stage probabilities (``bench/sbc/reliability.py``).

Rows are appended after each fit, so a run stopped by a wall-clock cap (``timeout``) keeps the
simulations that finished; ``--resume`` continues from the last seed in the file. Ranks are
written for each L given (default 99 and 19): posterior draws are autocorrelated, and ranks
among correlated draws are U-shaped even for a calibrated posterior (Talts et al. 2018, Sec.
4.2), so the coarser L (600 draws thinned by ~30) is the check that is not confounded by it.

Dawid, A. P. (1982). The well-calibrated Bayesian. JASA 77(379), 605-610.

Talts, S., Betancourt, M., Simpson, D., Vehtari, A. and Gelman, A. (2018). Validating Bayesian
inference algorithms with simulation-based calibration. arXiv:1804.06788.
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from stressflow.data import DataReport, FeatureTransform, PreparedData
from stressflow.models import dims
from stressflow.models.pymc_model import build_model
from stressflow.models.spec import ModelSpec

MODELS = {"default": ModelSpec, "base": ModelSpec.base}


def model_features(spec: ModelSpec) -> tuple[str, ...]:
    """The observables the model is fitted to: the four built-in ones and the spec's extras."""
    return (*dims.FEATURES, *spec.observables)


def prior_draws(spec: ModelSpec, seed: int, n: int | None = None) -> list[dict[str, np.ndarray]]:
    """``n`` draws (one when ``n`` is None) of ``mu`` (K, D), ``sigma`` (K, D) and ``P`` (K, K)
    from the model's prior, seeded by ``seed``.

    The free variables are forward-sampled from the PyMC model that :func:`build_model` makes
    (the model is not written a second time here). Forward sampling ignores transforms, so the
    ordered ``mu_order`` is sorted afterwards: the ordered transform on iid normals gives the
    density of their order statistics. ``mu`` and ``P`` are then the model's own deterministic
    functions of the free variables."""
    import pymc as pm
    import pytensor

    index = pd.bdate_range("2000-01-03", periods=2)
    names = model_features(spec)
    model = build_model(pd.DataFrame(np.zeros((2, len(names))), index=index, columns=names),
                        spec)
    free = list(model.free_RVs)
    drawn = pm.draw(free, random_seed=seed) if n is None else pm.draw(free, draws=n,
                                                                       random_seed=seed)
    inputs = [v.name for v in free]
    theta = pytensor.function([model[name] for name in inputs], [model["mu"], model["P"]],
                              on_unused_input="ignore")
    out = []
    for i in range(1 if n is None else n):
        values = {name: (v if n is None else v[i]) for name, v in zip(inputs, drawn, strict=True)}
        values["mu_order"] = np.sort(values["mu_order"])
        mu, trans = theta(*(values[name] for name in inputs))
        out.append({"mu": np.asarray(mu), "sigma": np.asarray(values["sigma"]),
                    "P": np.asarray(trans)})
    return out


def prior_draw(spec: ModelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One draw of ``mu``, ``sigma`` and ``P`` from the model's prior (:func:`prior_draws`),
    seeded from ``rng``."""
    return prior_draws(spec, int(rng.integers(2**31)))[0]


def simulate(theta: dict[str, np.ndarray], n_days: int, rng: np.random.Generator):
    """Stages (T,) and observables (T, D) of the HMM: stage_1 uniform, then
    ``Pr(stage_t = j | stage_{t-1} = i) = P[i, j]``, ``y[t, d] ~ N(mu[s_t, d], sigma[s_t, d])``."""
    k, d = theta["mu"].shape
    stages = np.empty(n_days, dtype=np.int64)
    stages[0] = rng.integers(k)
    cum = np.cumsum(theta["P"], axis=1)
    u = rng.random(n_days)
    for t in range(1, n_days):
        stages[t] = min(int(np.searchsorted(cum[stages[t - 1]], u[t], side="right")), k - 1)
    y = theta["mu"][stages] + theta["sigma"][stages] * rng.standard_normal((n_days, d))
    return stages, y


def prepared(y: np.ndarray, names: tuple[str, ...]) -> PreparedData:
    """The simulated observables as a PreparedData with the identity transform."""
    d = len(names)
    index = pd.bdate_range("2000-01-03", periods=len(y), name=dims.TIME)
    features = pd.DataFrame(y, index=index, columns=pd.Index(names, name=dims.FEATURE))
    transform = FeatureTransform(features=names, center=(0.0,) * d, scale=(1.0,) * d)
    prices = pd.DataFrame({"close": np.full(len(y), 100.0)}, index=index.rename("date"))
    report = DataReport(start=index[0], end=index[-1], n_rows=len(y), spread_source="simulated",
                        n_missing=dict.fromkeys(names, 0))
    return PreparedData(features=features, raw=features.copy(), prices=prices,
                        transform=transform, report=report)


def ranks(theta: dict[str, np.ndarray], posterior, n_ranked: int) -> dict[str, int]:
    """Rank of each true scalar among ``n_ranked`` evenly thinned posterior draws (0..L);
    the structural zeros of P are left out."""
    out = {}
    for name in ("mu", "sigma", "P"):
        da = posterior[name]
        draws = da.values.reshape((-1, *da.shape[2:]))
        keep = np.linspace(0, len(draws) - 1, n_ranked).round().astype(int)
        below = (draws[keep] < theta[name][None]).sum(axis=0)
        for idx in np.ndindex(below.shape):
            if name == "P" and theta[name][idx] == 0.0:
                continue  # a structural zero of P (a forbidden move) has no rank
            out[f"{name}[{','.join(map(str, idx))}]"] = int(below[idx])
    return out


#: Probability bins of the reliability record: [0, 0.1), ..., [0.9, 1.0].
RELIABILITY_BINS = 10


def reliability_rows(seed: int, stages: np.ndarray, probs: dict[str, np.ndarray],
                     names) -> list[dict]:
    """Per kind of probability (``probs``: e.g. ``smoothed`` = ``Pr(stage_t = k | y_1..y_T)``,
    ``filtered`` = ``Pr(stage_t = k | y_1..y_t)``, each (T, K)), stage and probability bin: the
    number of days, the sum of the probabilities and the number of days whose TRUE stage is k.
    Pooled over simulations, ``n_true / n`` against ``sum_p / n`` per bin is the reliability
    diagram of the stage probabilities (Dawid 1982): equal if they are calibrated."""
    rows = []
    for kind, values in probs.items():
        for k, name in enumerate(names):
            p = values[:, k]
            bins = np.minimum((p * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
            truth = stages == k
            for b in range(RELIABILITY_BINS):
                inside = bins == b
                if inside.any():
                    rows.append({"seed": seed, "kind": kind, "stage": str(name), "bin": b,
                                 "n": int(inside.sum()), "sum_p": float(p[inside].sum()),
                                 "n_true": int(truth[inside].sum())})
    return rows


def append_rows(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` to the CSV at ``path`` (header first if the file is new)."""
    header = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if header:
            writer.writeheader()
        writer.writerows(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="default",
                        help="default: ModelSpec() (five stages, compulsion feature); base: "
                             "ModelSpec.base() (four stages ordered on volatility)")
    parser.add_argument("--n-sims", type=int, default=200)
    parser.add_argument("--n-days", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--ranked", type=int, nargs="+", default=[99, 19],
                        help="L: thinned draws per rank; one output file per L (the first is "
                             "--out, the others --out with _L<L> before the suffix)")
    parser.add_argument("--seed", type=int, default=0, help="first simulation's seed")
    parser.add_argument("--out", default="bench/results/sbc_ranks.csv")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kmeans-starts-only", action="store_true",
                        help="EM start from the k-means starts alone, without the splits of the "
                             "(K-1)-stage optimum: the start every simulation of the default run "
                             "(0-149) used, as it began before the splits existed; for resuming "
                             "that run")
    args = parser.parse_args(argv)

    from stressflow.inference import fit

    if args.kmeans_starts_only:
        import functools

        from stressflow.inference.fitting import initialize

        # fit() imports em_search from the module when it runs, so it gets this one
        initialize.em_search = functools.partial(initialize.em_search, split_starts=False)

    spec = MODELS[args.model]()
    names = model_features(spec)
    out = Path(args.out)
    outs = {n: out if i == 0 else out.with_name(f"{out.stem}_L{n}{out.suffix}")
            for i, n in enumerate(args.ranked)}
    reliability_out = out.with_name(f"{out.stem}_reliability{out.suffix}")
    first = args.seed
    if args.resume and out.exists():
        done = pd.read_csv(out)
        first = int(done["seed"].max()) + 1 if len(done) else args.seed
    else:
        for path in (*outs.values(), reliability_out):
            path.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    for seed in range(first, first + args.n_sims):
        rng = np.random.default_rng([20181, seed])
        theta = prior_draw(spec, rng)
        stages, y = simulate(theta, args.n_days, rng)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(prepared(y, names), spec=spec, chains=args.chains, draws=args.draws,
                         tune=args.tune, seed=seed, pointwise_loglik=False)
        from stressflow.inference import check_fit

        diag = check_fit(result, warn=False)
        for n_ranked, path in outs.items():
            row = {"seed": seed, "model": args.model, "seconds": round(time.perf_counter() - t0, 2),
                   "max_rhat": round(float(diag.max_rhat), 4),
                   "min_ess_bulk": round(float(diag.min_ess_bulk), 1),
                   "divergences": int(diag.divergences),
                   "stages_visited": int(len(np.unique(stages))), "ranked": n_ranked,
                   **ranks(theta, result["posterior"], n_ranked)}
            append_rows(path, [row])
        st = result["stages"]
        probs = {kind: st[kind].transpose(dims.TIME, dims.STAGE).values
                 for kind in ("smoothed", "filtered")}
        append_rows(reliability_out, reliability_rows(seed, stages, probs, st[dims.STAGE].values))
        print(f"sim {seed}: {row['seconds']:.1f} s, max R-hat {row['max_rhat']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
