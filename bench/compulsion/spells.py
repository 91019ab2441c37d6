"""Where a variant's forced-flow days are: spell lengths and calendar years (label-free).

For each variant named on the command line: the EM point estimate on the S&P 500 1985-2018
(``scores.smoothed_in_sample``, from ``--seeds`` k-means seeds), then

- the stage means and sds and ``P[k, k]``;
- from ``--paths`` FFBS paths: the number of forced-flow spells per
  path and the share of forced-flow days that lie in spells of 1-2, at most 5, at most 10 and
  at least 21 days;
- the mean smoothed ``Pr(stage_t = forced_flow | y_1..y_T)`` per calendar year.

No label is read. Run from the repository root::

    .venv/bin/python -m bench.compulsion.spells k5_bond_gated k6_bond_gated

Writes ``bench/results/compulsion_spells.md``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from . import dwell, scores
from .em import FF, NAMES
from .features import raw_observables
from .report import markdown_table
from .variants import VARIANTS

RESULTS = Path(__file__).resolve().parents[1] / "results"
BINS = (("1-2 days", 1, 2), ("<= 5 days", 1, 5), ("<= 10 days", 1, 10), (">= 21 days", 21, None))


def _md(frame: pd.DataFrame) -> str:
    values = frame.to_numpy()
    rows = [[str(i), *(float(x) for x in r)] for i, r in zip(frame.index, values, strict=True)]
    return "\n".join(markdown_table(["", *map(str, frame.columns)], rows))


def spell_lengths(paths: np.ndarray, stage: int) -> np.ndarray:
    """Lengths of every run of ``stage`` in the (N, T) paths, concatenated over paths."""
    inside = np.pad(paths == stage, ((0, 0), (1, 1))).astype(np.int8)
    d = np.diff(inside, axis=1)
    return np.flatnonzero(d.ravel() == -1) - np.flatnonzero(d.ravel() == 1)


def describe(name: str, raw: pd.DataFrame, n_paths: int, seed: int) -> str:
    """Markdown section for one variant."""
    v = {x.name: x for x in VARIANTS}[name]
    fit, idx, _, gamma, paths = scores.smoothed_in_sample(raw, v.columns, v.design, n_paths, seed)
    k = v.design.n_stages
    lens = spell_lengths(paths, FF)
    total = lens.sum()
    names = NAMES[:k]
    stages = pd.DataFrame(fit.mu, index=names, columns=v.columns).round(2)
    stages["P[k,k]"] = np.round(np.diag(fit.P), 3)
    stages["mean Pr"] = np.round(gamma.mean(axis=0), 3)
    sds = pd.DataFrame(fit.sigma, index=names, columns=v.columns).round(2)
    share = {label: float(lens[(lens >= lo) & (lens <= (hi or lens.max()))].sum() / total)
             for label, lo, hi in BINS}
    years = pd.Series(gamma[:, FF], index=idx).groupby(idx.year).mean().round(3)
    phases = v.design.ff_phases
    stay = (f" Forced flow is {phases} phases in series: its P[k,k] is each phase's stay, its "
            f"expected stay {dwell.expected_stay(fit.P, phases, FF):.1f} days."
            if phases > 1 else "")
    out = [f"## {name}", "", f"{v.note}; EM log posterior {fit.log_post:,.1f}.{stay}", "",
           "Stage means (standardised), persistence and mean smoothed probability:", "",
           _md(stages), "", "Stage sds:", "", _md(sds), "",
           f"Forced-flow spells in {n_paths} FFBS paths: {len(lens) / n_paths:.1f} per path, "
           f"mean length {total / max(len(lens), 1):.1f} days; share of forced-flow days in "
           "spells of " + ", ".join(f"{label} {share[label]:.3f}" for label, *_ in BINS) + ".",
           "", "Mean smoothed Pr(forced_flow) per calendar year:", "",
           _md(years.rename("mean Pr(forced_flow)").to_frame().T), ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("variants", nargs="+")
    p.add_argument("--seeds", type=int, default=32, help="k-means seeds of the EM start")
    p.add_argument("--paths", type=int, default=200)
    p.add_argument("--seed", type=int, default=0, help="seed of the FFBS paths")
    p.add_argument("--out", default="compulsion_spells",
                   help="stem of the Markdown file written under bench/results/")
    args = p.parse_args(argv)
    scores.SEEDS = tuple(range(args.seeds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = raw_observables("sp500")
    out = "" if args.out == "compulsion_spells" else f" --out {args.out}"
    command = f".venv/bin/python -m bench.compulsion.spells{out} {' '.join(args.variants)}"
    parts = ["# Where forced flow's days are (EM point estimates, S&P 500 1985-2018)", "",
             f"Regenerate: `{command}` (k-means seeds 0-{args.seeds - 1}, {args.paths} FFBS "
             f"paths, seed {args.seed}). No catalogue label is read.", ""]
    parts += [describe(name, raw, args.paths, args.seed) for name in args.variants]
    text = "\n".join(parts)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
