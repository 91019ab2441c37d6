"""Reliability of the stage probabilities on the SBC simulations: is ``Pr(stage_t = k | ...)``
= p right a share p of the time?

Reads the ``<out>_reliability.csv`` that ``run_sbc.py`` appends per simulation (per stage,
kind and probability bin: days ``n``, summed probability ``sum_p`` and days truly in the stage
``n_true``), pools the simulations and reports, for ``smoothed`` (``Pr(stage_t = k |
y_1..y_T)``) and ``filtered`` (``Pr(stage_t = k | y_1..y_t)``), per bin the mean stated
probability against the observed frequency, with a 95% interval from resampling whole
simulations (days within one simulation are not independent), and per stage the expected
calibration error ``ECE = sum_b (n_b / N) |freq_b - mean_p_b|``. Calibrated probabilities
have ``freq_b = mean_p_b`` in every bin (Dawid 1982).

Usage::

    PYTHONPATH=. python bench/sbc/reliability.py \
        bench/results/sbc_default_gated_ranks_reliability.csv \
        --png bench/results/sbc_default_gated_reliability.png --md out.md

A file with an ``n_days`` column (``em_reliability.py``) is reported per series length.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def pooled(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, bin): days, mean stated probability and observed frequency, all stages
    pooled (each day counts once per stage)."""
    g = frame.groupby(["kind", "bin"])[["n", "sum_p", "n_true"]].sum()
    return g.assign(mean_p=g["sum_p"] / g["n"], freq=g["n_true"] / g["n"])


def bootstrap_freq(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """2.5% and 97.5% quantiles of each (kind, bin)'s observed frequency when the simulations
    are resampled with replacement."""
    rng = np.random.default_rng(seed)
    seeds = frame["seed"].unique()
    per_seed = frame.groupby(["seed", "kind", "bin"])[["n", "n_true"]].sum()
    draws = []
    for _ in range(n_boot):
        pick = pd.Index(rng.choice(seeds, size=len(seeds), replace=True), name="seed")
        counts = pd.Series(pick).value_counts()
        w = per_seed.join(counts.rename("w"), on="seed", how="inner")
        agg = (w[["n", "n_true"]].mul(w["w"], axis=0)).groupby(["kind", "bin"]).sum()
        draws.append(agg["n_true"] / agg["n"])
    stacked = pd.concat(draws, axis=1)
    return pd.DataFrame({"lo": stacked.quantile(0.025, axis=1),
                         "hi": stacked.quantile(0.975, axis=1)})


def stage_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, stage): days, mean stated probability ``mean_pr``, share of days truly in the
    stage ``true_share`` and the expected calibration error ``ece``."""
    rows = []
    for (kind, stage), part in frame.groupby(["kind", "stage"]):
        g = part.groupby("bin")[["n", "sum_p", "n_true"]].sum()
        n = g["n"].sum()
        ece = float((g["n"] / n * (g["n_true"] / g["n"] - g["sum_p"] / g["n"]).abs()).sum())
        rows.append({"kind": kind, "stage": stage, "days": int(n),
                     "mean_pr": float(g["sum_p"].sum() / n),
                     "true_share": float(g["n_true"].sum() / n), "ece": ece})
    return pd.DataFrame(rows)


def report(frame: pd.DataFrame, title: str) -> tuple[list[str], pd.DataFrame]:
    """Markdown lines (pooled bins with intervals, then per-stage errors) and the pooled
    table of one set of simulations."""
    table = pooled(frame).join(bootstrap_freq(frame))
    errors = stage_errors(frame)
    lines = [f"### {title}: {frame['seed'].nunique()} simulations", "",
             "| kind | bin | days | mean stated Pr | observed frequency [95%, by simulation] |",
             "|---|---|---|---|---|"]
    for (kind, b), r in table.iterrows():
        lines.append(f"| {kind} | [{b / 10:.1f}, {(b + 1) / 10:.1f}) | {int(r['n'])} | "
                     f"{r['mean_p']:.3f} | {r['freq']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] |")
    lines += ["", "| kind | stage | days | mean Pr | true share | ECE |",
              "|---|---|---|---|---|---|"]
    for r in errors.itertuples():
        lines.append(f"| {r.kind} | {r.stage} | {r.days} | {r.mean_pr:.4f} | "
                     f"{r.true_share:.4f} | {r.ece:.4f} |")
    return lines + [""], table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reliability")
    parser.add_argument("--png", default=None)
    parser.add_argument("--md", default=None)
    args = parser.parse_args(argv)
    frame = pd.read_csv(args.reliability)
    parts = ([(f"T = {n}", part.drop(columns="n_days")) for n, part in frame.groupby("n_days")]
             if "n_days" in frame.columns else [("SBC fits", frame)])
    lines, tables = [], []
    for title, part in parts:
        text, table = report(part, title)
        lines += text
        tables.append((title, table))
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
        for ax, kind in zip(axes, ("smoothed", "filtered"), strict=True):
            ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
            for title, table in tables:
                part = table.loc[kind]
                ax.errorbar(part["mean_p"], part["freq"],
                            yerr=[part["freq"] - part["lo"], part["hi"] - part["freq"]],
                            fmt="o-", ms=4, capsize=2, label=title)
            ax.set_title(f"{kind}: Pr(stage_t = k | ...)")
            ax.set_xlabel("stated probability (bin mean)")
        axes[0].set_ylabel("observed frequency of the stage")
        axes[0].legend(fontsize=8, loc="upper left")
        fig.suptitle("Reliability of the stage probabilities on prior simulations "
                     "(all stages pooled)")
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
