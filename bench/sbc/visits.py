"""Where the SBC fits of the default model fail: split by how often each stage was visited.

For every simulation in a ranks file written by ``run_sbc.py`` (same seeds, so the same prior
draw and the same simulated path), recount the days the TRUE stage path spends in each stage,
and report max R-hat and the rank dispersion (``plot_sbc.group_dispersion``) for the
simulations whose every stage holds at least ``--min-days`` days against the others.

A diagnostic of the failure mode, not an SBC: the split is on the latent path, which is part of
what is inferred, so the ranks of a calibrated posterior need not be uniform within either part.

With ``--fitted RELIABILITY_CSV`` (the ``<out>_reliability.csv`` record of the same run) the
split is instead on what the FIT says: each stage's expected days ``sum_t Pr(stage_t = k |
y_1..y_T)`` (posterior mean of the smoothed probabilities). That split is a function of the data
alone (and of the sampler's own randomness), and conditioning on the data leaves the posterior
unchanged, ``p(theta | y, y in A) = p(theta | y)``, so the ranks of a calibrated posterior ARE
uniform within each part: a valid SBC of the rule "trust the intervals when every stage holds
at least ``--min-days`` expected days". ``check_fit`` applies that rule per chain
(``Diagnostics.sparse_stages``); the record holds the chains pooled, so here it is applied to
the pooled posterior.

Usage: ``PYTHONPATH=. python bench/sbc/visits.py bench/results/sbc_default_ranks_L19.csv
[--fitted bench/results/sbc_default_ranks_reliability.csv]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bench.sbc.plot_sbc import GROUPS, dispersion_cells
from bench.sbc.run_sbc import MODELS, prior_draw, simulate


def true_visits(model: str, seeds, n_days: int) -> pd.DataFrame:
    """Days per true stage (columns ``days_0..days_{K-1}``) of each simulation seed."""
    spec = MODELS[model]()
    rows = []
    for seed in seeds:
        rng = np.random.default_rng([20181, int(seed)])
        theta = prior_draw(spec, rng)
        stages, _ = simulate(theta, n_days, rng)
        counts = np.bincount(stages, minlength=theta["P"].shape[0])
        rows.append({"seed": int(seed), **{f"days_{k}": int(c) for k, c in enumerate(counts)}})
    return pd.DataFrame(rows)


def fitted_visits(reliability_csv) -> pd.DataFrame:
    """Expected days per fitted stage (columns ``days_<stage>``: ``sum_t Pr(stage_t = k |
    y_1..y_T)``) of each simulation seed, from a ``run_sbc.py`` reliability record."""
    rec = pd.read_csv(reliability_csv)
    rec = rec[rec["kind"] == "smoothed"]
    days = rec.groupby(["seed", "stage"])["sum_p"].sum().unstack("stage")
    days.columns = [f"days_{c}" for c in days.columns]
    return days.reset_index()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ranks")
    parser.add_argument("--n-days", type=int, default=1000)
    parser.add_argument("--min-days", type=int, default=20)
    parser.add_argument("--fitted", default=None, metavar="RELIABILITY_CSV",
                        help="split on the fit's expected days per stage (a valid SBC), "
                             "not on the true path")
    args = parser.parse_args(argv)
    table = pd.read_csv(args.ranks)
    n_ranked = int(table["ranked"].iloc[0])
    if args.fitted:
        visits = fitted_visits(args.fitted)
        print(f"split on the fit's expected days per stage ({args.fitted}); seeds without a "
              f"record dropped: {len(set(table.seed) - set(visits.seed))}")
    else:
        visits = true_visits(str(table["model"].iloc[0]), table["seed"], args.n_days)
    table = table.merge(visits, on="seed")
    days = table[[c for c in visits.columns if c.startswith("days_")]].to_numpy()
    table["min_days"] = days.min(axis=1)
    print(f"{len(table)} simulations, L = {n_ranked}; rank dispersion [95%] per group\n")
    print("| every stage visited" + (" (fit's expected days)" if args.fitted else "")
          + " | n | max R-hat <= 1.01 | median max R-hat | "
          + " | ".join(GROUPS) + " |")
    print("|---|---|---|---|" + "---|" * len(GROUPS))
    for label, part in ((f">= {args.min_days} days", table[table.min_days >= args.min_days]),
                        (f"< {args.min_days} days (some stage)",
                         table[table.min_days < args.min_days])):
        if len(part) < 2:
            print(f"| {label} | {len(part)} | | | " + " | ".join("" for _ in GROUPS) + " |")
            continue
        cells = dispersion_cells(part, n_ranked)
        print(f"| {label} | {len(part)} | {(part.max_rhat <= 1.01).sum()} | "
              f"{part.max_rhat.median():.3f} | " + " | ".join(cells) + " |")
    kind = "expected days per fitted stage" if args.fitted else "days per true stage"
    print(f"\nper simulation: seed, {kind}, max R-hat")
    for row in table.itertuples():
        print(row.seed, np.round(days[row.Index]).astype(int).tolist(), row.max_rhat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
