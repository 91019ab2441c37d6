"""Does the EM search find the SBC world's optimum? Per simulated world of ``run_sbc.py``.

For each seed, the world of ``run_sbc.py`` (theta from the default model's prior, T days
simulated with the same generator seeds), the log posterior that the EM search maximises,
``log p(y_1..y_T | theta) + log p(P)`` (the Dirichlet part, up to a constant), at the TRUE
theta, and the best optimum of :func:`stressflow.inference.fitting.initialize.em_search` with
the k-means starts alone and with the split starts as well. An EM best below the truth's value
is a search failure: a higher posterior mode exists and the search did not reach it, so NUTS
started there samples a lower mode. The comparison is plug-in (modes, not posterior mass).

With ``--ranks`` (a ``run_sbc.py`` rank file of the same seeds) the summary also splits the
rank dispersion ``12 E[(u - 1/2)^2]`` of ``mu``, ``sigma`` and ``P`` by whether the search
the SBC fit started from (``--ranks-start``) fell below the truth: a diagnostic (it conditions
on the data), not a valid SBC.

Usage::

    PYTHONPATH=. python bench/sbc/em_truth.py --n-sims 150 --out bench/results/sbc_em_truth.csv \
        --ranks bench/results/sbc_default_gated_ranks_L19.csv --ranks-start kmeans \
        --md bench/results/sbc_em_truth.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bench.sbc.plot_sbc import GROUPS, dispersion_cells
from bench.sbc.run_sbc import MODELS, model_features, prepared, prior_draw, simulate


def world(spec, names, seed: int, n_days: int):
    """theta, true stages and prepared observables of ``run_sbc.py``'s simulation ``seed``."""
    rng = np.random.default_rng([20181, seed])
    theta = prior_draw(spec, rng)
    stages, y = simulate(theta, n_days, rng)
    return theta, stages, prepared(y, names)


def truth_log_posterior(spec, theta, features) -> float:
    """``log p(y | theta) + log p(P)`` at the true theta, as the EM search scores its optima."""
    from stressflow.inference.fitting import initialize
    from stressflow.models.evaluate import evaluate, model_data
    from stressflow.models.numerics import kernels
    from stressflow.models.spec import allowed_transitions
    from stressflow.models.transitions import dirichlet_concentration

    log_init, log_trans, log_lik = evaluate(spec, theta, model_data(spec, features))
    allowed = allowed_transitions(spec.transitions, spec.n_stages)
    trans = np.where(allowed, np.maximum(theta["P"], 1e-300), 1.0)
    return float(kernels.log_marginal(log_init, log_trans, log_lik)
                 + initialize._log_prior_trans(trans, dirichlet_concentration(spec), allowed))


def summary(table: pd.DataFrame, ranks: pd.DataFrame | None, start: str) -> list[str]:
    """Markdown lines: search failures by start set, and the rank dispersion split by them."""
    n = len(table)
    lines = [f"{n} simulated worlds (seeds {table.seed.min()}-{table.seed.max()}), "
             f"T = {table.n_days.iloc[0]}.", "",
             "| EM starts | best below the truth | median best - truth | seconds (median) |",
             "|---|---|---|---|"]
    for name in ("kmeans", "split"):
        gap = table[f"{name}_gap"]
        lines.append(f"| {name} | {(gap < 0).sum()} of {n} | {gap.median():+.1f} | "
                     f"{table[f'{name}_seconds'].median():.1f} |")
    gain = table.split_gap - table.kmeans_gap
    lines += ["", f"Splits raise the best optimum in {(gain > 1.0).sum()} of {n} worlds "
              f"(median gain {gain.median():+.1f}, max {gain.max():+.1f}); "
              f"a world with a stage on fewer than 20 true days: "
              f"{(table.min_stage_days < 20).sum()} of {n}."]
    if ranks is not None:
        joined = ranks.merge(table[["seed", f"{start}_gap"]], on="seed")
        n_ranked = int(joined["ranked"].iloc[0])
        lines += ["", f"Rank dispersion at L = {n_ranked} split by whether the `{start}` search "
                  "(the SBC fit's start) fell below the truth (a diagnostic, not a valid SBC):",
                  "", "| worlds | n | " + " | ".join(GROUPS) + " |",
                  "|---|---|" + "---|" * len(GROUPS)]
        for label, rows in (("best below the truth", joined[joined[f"{start}_gap"] < 0]),
                            ("best at or above the truth", joined[joined[f"{start}_gap"] >= 0])):
            cells = dispersion_cells(rows, n_ranked, min_rows=2, empty="-")
            lines.append(f"| {label} | {len(rows)} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="default")
    parser.add_argument("--n-sims", type=int, default=150)
    parser.add_argument("--n-days", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="first simulation's seed")
    parser.add_argument("--out", default="bench/results/sbc_em_truth.csv")
    parser.add_argument("--ranks", default=None, help="a run_sbc.py rank file of the same seeds")
    parser.add_argument("--ranks-start", choices=("kmeans", "split"), default="kmeans",
                        help="the EM start the SBC fits of --ranks used")
    parser.add_argument("--md", default=None)
    parser.add_argument("--summary-only", action="store_true",
                        help="summarise the worlds already in --out instead of searching again")
    args = parser.parse_args(argv)
    if args.summary_only:
        return write_summary(pd.read_csv(args.out), args)

    from stressflow.inference.fitting import initialize

    spec = MODELS[args.model]()
    names = model_features(spec)
    out = Path(args.out)
    rows = []
    with threadpool_limits(1):  # BLAS/OpenMP threads spin-wait beside another job
        for seed in range(args.seed, args.seed + args.n_sims):
            theta, stages, data = world(spec, names, seed, args.n_days)
            row = {"seed": seed, "n_days": args.n_days,
                   "min_stage_days": int(np.bincount(stages, minlength=spec.n_stages).min()),
                   "truth": truth_log_posterior(spec, theta, data.features)}
            for name, split in (("kmeans", False), ("split", True)):
                t0 = time.perf_counter()
                best = initialize.em_search(data.features, spec, seed, split_starts=split)
                row[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
                row[f"{name}_gap"] = float(best.optima["log_posterior"].iloc[0]) - row["truth"]
            rows.append(row)
            print(f"world {seed}: k-means {row['kmeans_gap']:+.1f}, "
                  f"split {row['split_gap']:+.1f}", flush=True)
    table = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(out)
    return write_summary(table, args)


def write_summary(table: pd.DataFrame, args) -> int:
    """Print the summary and write it to ``args.md`` if given."""
    ranks = pd.read_csv(args.ranks) if args.ranks else None
    lines = summary(table, ranks, args.ranks_start)
    print("\n".join(lines))
    if args.md:
        Path(args.md).write_text("# EM search against the truth in the SBC worlds\n\n"
                                 + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
