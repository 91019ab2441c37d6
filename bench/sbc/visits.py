"""Where the SBC fits of the default model fail: split by how often each stage was visited.

For every simulation in a ranks file written by ``run_sbc.py`` (same seeds, so the same prior
draw and the same simulated path), recount the days the TRUE stage path spends in each stage,
and report max R-hat and the rank dispersion (``plot_sbc.group_dispersion``) for the
simulations whose every stage holds at least ``--min-days`` days against the others.

A diagnostic of the failure mode, not an SBC: the split is on the latent path, which is part of
what is inferred, so the ranks of a calibrated posterior need not be uniform within either part.

Usage: ``PYTHONPATH=. python bench/sbc/visits.py bench/results/sbc_default_ranks_L19.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plot_sbc import GROUPS, group_dispersion  # noqa: E402
from run_sbc import MODELS, prior_draw, simulate  # noqa: E402


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ranks")
    parser.add_argument("--n-days", type=int, default=1000)
    parser.add_argument("--min-days", type=int, default=20)
    args = parser.parse_args(argv)
    table = pd.read_csv(args.ranks)
    n_ranked = int(table["ranked"].iloc[0])
    visits = true_visits(str(table["model"].iloc[0]), table["seed"], args.n_days)
    table = table.merge(visits, on="seed")
    days = table[[c for c in visits.columns if c.startswith("days_")]].to_numpy()
    table["min_days"] = days.min(axis=1)
    print(f"{len(table)} simulations, L = {n_ranked}; rank dispersion [95%] per group\n")
    print("| every stage visited | n | max R-hat <= 1.01 | median max R-hat | "
          + " | ".join(GROUPS) + " |")
    print("|---|---|---|---|" + "---|" * len(GROUPS))
    for label, part in ((f">= {args.min_days} days", table[table.min_days >= args.min_days]),
                        (f"< {args.min_days} days (some stage)",
                         table[table.min_days < args.min_days])):
        if len(part) < 2:
            print(f"| {label} | {len(part)} | | | " + " | ".join("" for _ in GROUPS) + " |")
            continue
        cells = []
        for group in GROUPS:
            cols = [c for c in part.columns if c.startswith(f"{group}[")]
            mean, lo, hi = group_dispersion(part, cols, n_ranked)
            cells.append(f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
        print(f"| {label} | {len(part)} | {(part.max_rhat <= 1.01).sum()} | "
              f"{part.max_rhat.median():.3f} | " + " | ".join(cells) + " |")
    print("\nper simulation: seed, days per true stage, max R-hat")
    for row in table.itertuples():
        print(row.seed, [int(getattr(row, f"days_{k}")) for k in range(days.shape[1])],
              row.max_rhat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
