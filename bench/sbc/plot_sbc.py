"""ECDF plot and summary of the SBC ranks written by ``run_sbc.py``.

For each parameter group (``mu``, ``sigma``, ``P``) the plot shows, per scalar, the ECDF of the
fractional ranks ``r / L`` minus the uniform CDF, with a simultaneous 95% band for one
parameter (Dvoretzky-Kiefer-Wolfowitz: half-width ``sqrt(log(2 / 0.05) / (2 N))``). A
calibrated posterior keeps every curve inside the band up to the 5% chance per parameter.

The summary gives, per group, the rank dispersion ``12 E[(u - 1/2)^2]`` (1 if calibrated;
a posterior too narrow gives U-shaped ranks and a value above 1) averaged over the group's
scalars per simulation, with a 95% interval over the independent simulations, and the
Kolmogorov-Smirnov p-values of the scalars against the discrete uniform on 0..L with the power
of that test, at this N, against a posterior whose sd is 10% too small or too large (ranks
``Phi(1.1 Z)`` or ``Phi(Z / 1.1)``, Monte Carlo).

With ``--against`` another rank file of the same seeds (the same simulated worlds fitted another
way, e.g. from another EM start), the summary adds the paired difference of the dispersions.

Usage: ``PYTHONPATH=. python bench/sbc/plot_sbc.py bench/results/sbc_ranks.csv [--png out.png]
[--against other_ranks.csv]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

GROUPS = ("mu", "sigma", "P")


def fractional(ranks: np.ndarray, n_ranked: int) -> np.ndarray:
    """Ranks 0..L mapped to (0, 1) with the discrete uniform's mid-point jitter removed."""
    return (ranks + 0.5) / (n_ranked + 1)


def ks_pvalue(u: np.ndarray) -> float:
    """KS test of fractional ranks against Uniform(0, 1)."""
    return float(stats.kstest(u, "uniform").pvalue)


def power_against(scale: float, n: int, n_ranked: int, reps: int = 2000, seed: int = 0) -> float:
    """Share of KS tests at level 5% that reject when the posterior sd is off by ``scale``."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        u = stats.norm.cdf(scale * rng.standard_normal(n))
        r = np.floor(u * (n_ranked + 1)).clip(0, n_ranked)
        hits += ks_pvalue(fractional(r, n_ranked)) < 0.05
    return hits / reps


def dispersion(scale: float, n: int = 2_000_000, seed: int = 1) -> float:
    """``12 E[(u - 1/2)^2]`` for ranks ``u = Phi(scale Z)``: 1 when calibrated, > 1 when the
    posterior is too narrow (``scale > 1``), < 1 when too wide."""
    z = np.random.default_rng(seed).standard_normal(n)
    return float(12.0 * np.mean((stats.norm.cdf(scale * z) - 0.5) ** 2))


def per_simulation(table: pd.DataFrame, columns: list[str], n_ranked: int) -> np.ndarray:
    """``12 (u - 1/2)^2`` of each simulation, averaged over the scalars ``columns``."""
    u = fractional(table[columns].to_numpy(dtype=float), n_ranked)
    return (12.0 * (u - 0.5) ** 2).mean(axis=1)


def group_dispersion(table: pd.DataFrame, columns: list[str], n_ranked: int):
    """Per-simulation mean of ``12 (u - 1/2)^2`` over the group's scalars: its mean over the
    simulations (independent) and a 95% interval (normal approximation)."""
    per_sim = per_simulation(table, columns, n_ranked)
    mean = float(per_sim.mean())
    half = 1.96 * float(per_sim.std(ddof=1)) / np.sqrt(len(per_sim))
    return mean, mean - half, mean + half


def paired_dispersion(table: pd.DataFrame, other: pd.DataFrame, columns: list[str],
                      n_ranked: int):
    """On the seeds both rank tables hold (the same simulated worlds fitted two ways): the group
    dispersion of each and the mean paired difference ``table - other`` with a 95% interval
    (normal approximation over the simulations). Returns ``(n, mine, theirs, diff, lo, hi)``."""
    both = table.merge(other, on="seed", suffixes=("", "_other"))
    mine = per_simulation(both, columns, n_ranked)
    theirs = per_simulation(both, [f"{c}_other" for c in columns], n_ranked)
    diff = mine - theirs
    half = 1.96 * float(diff.std(ddof=1)) / np.sqrt(len(diff))
    d = float(diff.mean())
    return len(both), float(mine.mean()), float(theirs.mean()), d, d - half, d + half


def dispersion_cells(table: pd.DataFrame, n_ranked: int, stage: int | None = None,
                     min_rows: int = 1, empty: str = "") -> list[str]:
    """Per group of :data:`GROUPS`, ``"mean [lo, hi]"`` of :func:`group_dispersion` over the
    group's scalars (only stage ``stage``'s: ``mu[stage, .]``, the row ``P[stage, .]``, if
    given); ``empty`` where the group has no such scalar or ``table`` has fewer than
    ``min_rows`` simulations."""
    cells = []
    for group in GROUPS:
        prefix = f"{group}[" if stage is None else f"{group}[{stage},"
        columns = [c for c in table.columns if c.startswith(prefix)]
        if not columns or len(table) < min_rows:
            cells.append(empty)
            continue
        mean, lo, hi = group_dispersion(table, columns, n_ranked)
        cells.append(f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
    return cells


def by_stage(table: pd.DataFrame, n_ranked: int, names) -> list[str]:
    """Markdown rows: per stage ``k`` (the scalars ``mu[k, .]``, ``sigma[k, .]`` and the row
    ``P[k, .]``), each group's rank dispersion [95%], to show where a miscalibration sits."""
    return [f"| {k}: {name} | " + " | ".join(dispersion_cells(table, n_ranked, stage=k)) + " |"
            for k, name in enumerate(names)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ranks")
    parser.add_argument("--png", default=None)
    parser.add_argument("--md", default=None, help="also write this markdown summary")
    parser.add_argument("--against", default=None,
                        help="another rank file of the same seeds and L (the same worlds fitted "
                             "another way): add the paired difference of the dispersions")
    args = parser.parse_args(argv)
    table = pd.read_csv(args.ranks)
    n = len(table)
    n_ranked = int(table["ranked"].iloc[0])
    png = Path(args.png or Path(args.ranks).with_suffix(".png"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    band = np.sqrt(np.log(2 / 0.05) / (2 * n))
    grid = np.linspace(0, 1, 201)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    lines = []
    for ax, group in zip(axes, GROUPS, strict=True):
        columns = [c for c in table.columns if c.startswith(f"{group}[")]
        pvalues = []
        for c in columns:
            u = np.sort(fractional(table[c].to_numpy(), n_ranked))
            ecdf = np.searchsorted(u, grid, side="right") / n
            ax.plot(grid, ecdf - grid, lw=0.8, alpha=0.7)
            pvalues.append(ks_pvalue(u))
        ax.fill_between(grid, -band, band, color="0.85", zorder=0, label="95% band (DKW)")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{group}: {len(columns)} scalars")
        ax.set_xlabel("fractional rank")
        pvalues = np.array(pvalues)
        mean, lo, hi = group_dispersion(table, columns, n_ranked)
        lines.append(f"| {group} | {len(columns)} | {np.min(pvalues):.3f} | "
                     f"{np.median(pvalues):.3f} | {int((pvalues < 0.05).sum())} | "
                     f"{mean:.3f} [{lo:.3f}, {hi:.3f}] |")
    axes[0].set_ylabel("ECDF - uniform")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"SBC of the default model: {n} simulations, L = {n_ranked} draws ranked")
    fig.tight_layout()
    fig.savefig(png, dpi=120)

    power_narrow = power_against(1.1, n, n_ranked)
    power_wide = power_against(1 / 1.1, n, n_ranked)
    text = "\n".join([
        f"simulations: {n}; draws ranked L = {n_ranked}; DKW 95% half-width {band:.3f}",
        f"median seconds per fit {table['seconds'].median():.1f}; max R-hat > 1.05 in "
        f"{int((table['max_rhat'] > 1.05).sum())} fits, > 1.2 in "
        f"{int((table['max_rhat'] > 1.2).sum())}; divergences in "
        f"{int((table['divergences'] > 0).sum())} fits",
        "",
        "| group | scalars | min KS p | median KS p | p < 0.05 | rank dispersion [95%] |",
        "|---|---|---|---|---|---|",
        *lines,
        "",
        f"KS power per scalar at N = {n}: posterior sd 10% too small {power_narrow:.2f}, "
        f"10% too large {power_wide:.2f}",
        f"rank dispersion 12 E[(u - 1/2)^2]: 1 if calibrated; {dispersion(1.1):.3f} if every "
        f"posterior sd were 10% too small, {dispersion(1 / 1.1):.3f} if 10% too large",
        f"figure: {png}",
    ])
    names = _stage_names(str(table["model"].iloc[0]), len(
        {c.split("[")[1].split(",")[0] for c in table.columns if c.startswith("mu[")}))
    text += "\n".join([
        "", "", "by stage (the scalars of stage k: mu[k, .], sigma[k, .], the row P[k, .]):", "",
        "| stage | " + " | ".join(GROUPS) + " |", "|---|" + "---|" * len(GROUPS),
        *by_stage(table, n_ranked, names)])
    if args.against:
        other = pd.read_csv(args.against)
        if int(other["ranked"].iloc[0]) != n_ranked:
            raise SystemExit(f"{args.against} ranks L = {int(other['ranked'].iloc[0])} draws, "
                             f"{args.ranks} L = {n_ranked}")
        rows = []
        for group in GROUPS:
            columns = [c for c in table.columns if c.startswith(f"{group}[")]
            m, mine, theirs, d, lo, hi = paired_dispersion(table, other, columns, n_ranked)
            rows.append(f"| {group} | {m} | {mine:.3f} | {theirs:.3f} | {d:+.3f} [{lo:+.3f}, "
                        f"{hi:+.3f}] |")
        text += "\n".join([
            "", "", f"paired with {args.against} on the seeds both hold:", "",
            "| group | simulations | dispersion, this file | the other | difference [95%] |",
            "|---|---|---|---|---|", *rows])
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    return 0


def _stage_names(model: str, n_stages: int) -> list[str]:
    """Stage names of the run's model (``run_sbc.MODELS``), or indices if it is unknown."""
    from bench.sbc.run_sbc import MODELS

    names = list(MODELS[model]().stage_names) if model in MODELS else []
    return names if len(names) == n_stages else [str(k) for k in range(n_stages)]


if __name__ == "__main__":
    raise SystemExit(main())
