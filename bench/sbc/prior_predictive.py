"""Prior predictive check of the stage model: what the prior says about stage shares, entries
and how often a window leaves a stage (nearly) empty, beside what a fit says.

For ``--n-draws`` draws of ``P`` from the model's own prior (``run_sbc.prior_draws``), report
per stage the stationary share ``pi`` (``pi P = pi``,
:func:`stressflow.models.numerics.markov.stationary_distribution`), the expected duration
``1 / (1 - P[k, k])`` and the expected entries per 1,000 days ``1000 sum_{i != k} pi_i P[i, k]``,
as medians with 5%-95% intervals; then, for each ``--lengths`` T, the share of simulated paths
(stage 1 uniform, as in the model) in which some stage holds fewer than ``--min-days`` days or
none at all. With ``--fit`` (a fit file of the same model), the same three figures from its
posterior draws of ``P``, the posterior predictive share of days per stage (paths as long as
the fit's window simulated from its posterior draws) and its smoothed share
``mean_t Pr(stage_t = k | y_1..y_T)``. A fitted share far outside the prior's interval is a
prior-data conflict (Gabry et al. 2019); a smoothed share far outside the posterior predictive
interval says the emissions put days in a stage more often than the fitted transition law
would (a posterior predictive check, Gelman, Meng & Stern 1996).

This is the background of the SBC at T = 1,000 (``bench/results/sbc.md``): a stage the
simulated path leaves nearly empty has parameters the data cannot fix.

Usage::

    PYTHONPATH=. python bench/sbc/prior_predictive.py --fit sp500.nc \
        --out bench/results/prior_predictive.md

Gelman, A., Meng, X.-L. and Stern, H. (1996). Posterior predictive assessment of model fitness
via realized discrepancies. Statistica Sinica 6(4), 733-760.

Gabry, J., Simpson, D., Vehtari, A., Betancourt, M. and Gelman, A. (2019). Visualization in
Bayesian workflow. JRSS A 182(2), 389-402.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from stressflow.models.numerics.markov import stationary_distribution

from bench.sbc.run_sbc import MODELS, prior_draws, simulate


def stage_figures(trans: np.ndarray) -> dict[str, np.ndarray]:
    """Stationary share, expected duration and entries per 1,000 days, each (n, K), of the
    matrices ``trans`` (n, K, K)."""
    pi = stationary_distribution(trans)
    stay = np.diagonal(trans, axis1=-2, axis2=-1)
    inflow = np.einsum("ni,nik->nk", pi, trans) - pi * stay
    return {"share": pi, "duration": 1.0 / (1.0 - stay), "entries_per_1000d": 1000.0 * inflow}


def _interval(values: np.ndarray, fmt: str) -> list[str]:
    q = np.quantile(values, [0.5, 0.05, 0.95], axis=0)
    return [f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]" for m, lo, hi in q.T]


def predictive_shares(result, n_paths: int, seed: int) -> np.ndarray:
    """Share of days per stage, (n_paths, K), on stage paths as long as the fit's window
    simulated from its posterior (one evenly spaced draw of P per path, stage 1 uniform as in
    the model): the posterior predictive distribution of the realised shares."""
    post = result["posterior"]
    flat = {name: post[name].values.reshape(-1, *post[name].shape[2:])
            for name in ("mu", "sigma", "P")}
    n_days = int(result.attrs["n_days"])
    rng = np.random.default_rng([20182, seed])
    picks = np.linspace(0, len(flat["P"]) - 1, min(n_paths, len(flat["P"]))).round().astype(int)
    k = flat["P"].shape[-1]
    return np.array([np.bincount(simulate({n: v[i] for n, v in flat.items()}, n_days, rng)[0],
                                 minlength=k) / n_days for i in picks])


def markdown(table: pd.DataFrame) -> str:
    """A pipe table of ``table`` with its index as the first column."""
    head = [str(table.index.name or ""), *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in table.iterrows():
        lines.append("| " + " | ".join([str(key), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="default")
    parser.add_argument("--n-draws", type=int, default=500)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 2000, 4000, 8570])
    parser.add_argument("--min-days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit", help="a fit file of the same model, to compare with")
    parser.add_argument("--out", help="write the tables here (markdown) as well")
    args = parser.parse_args(argv)

    spec = MODELS[args.model]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draws = prior_draws(spec, args.seed, n=args.n_draws)
    trans = np.stack([d["P"] for d in draws])
    names = list(spec.stage_names)
    fmt = {"share": "{:.4f}", "duration": "{:.1f}", "entries_per_1000d": "{:.2f}"}
    prior = stage_figures(trans)
    table = pd.DataFrame({f"prior {key}": _interval(prior[key], fmt[key]) for key in fmt},
                         index=pd.Index(names, name="stage"))
    if args.fit:
        from stressflow.inference import load_fit, stage_shares

        result = load_fit(args.fit)
        post = result["posterior"]["P"]
        post = stage_figures(post.values.reshape(-1, *post.shape[-2:]))
        for key in fmt:
            table[f"fit {key}"] = _interval(post[key], fmt[key])
        table["fit predictive share"] = _interval(
            predictive_shares(result, args.n_draws, args.seed), fmt["share"])
        table["fit smoothed share"] = stage_shares(result).reindex(names).map("{:.4f}".format)

    rng = np.random.default_rng([20181, args.seed])
    rows = []
    for n_days in args.lengths:
        mins = np.array([np.bincount(simulate(d, n_days, rng)[0], minlength=len(names)).min()
                         for d in draws])
        rows.append({"T (days)": n_days,
                     f"some stage < {args.min_days} days": f"{np.mean(mins < args.min_days):.3f}",
                     "some stage empty": f"{np.mean(mins == 0):.3f}"})
    sparse = pd.DataFrame(rows).set_index("T (days)")

    text = (f"Prior predictive of `{args.model}` ({args.n_draws} draws of P from the model's "
            f"prior, seed {args.seed}): median [5%, 95%]\n\n" + markdown(table) + "\n\n"
            "Simulated paths (stage 1 uniform) with a sparse stage:\n\n"
            + markdown(sparse) + "\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
