"""Markdown report of the compulsion screen (tables built from the scored variants)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .em import NAMES

__all__ = ["write_markdown", "best_variants"]

_SUMMARY_COLS = (
    ("auc", "AUC"), ("brier", "Brier"), ("min_F", "min F"), ("max_D", "max D"),
    ("ff_share", "ff share"), ("ff_mean", "ff mean"), ("calm2017", "2017"),
    ("calm0506", "2005-06"), ("ff_duration", "ff dur"), ("vw", "VW"),
    ("oot_auc", "oot AUC"), ("oot_brier", "oot Brier"), ("oot_quant", "oot Quant"),
    ("oot_lehman", "oot Lehman"), ("oot_scare_2016", "oot 2016"), ("oot_q4_2018", "oot Q4 18"),
    ("cross_2008", "cross 0.5 (2008)"), ("lead_days", "lead"),
    ("cross_sep", "cross from Sep"), ("lead_sep", "lead Sep"), ("oot_ff_share", "oot ff share"),
    ("targets_met", "met"), ("log_post", "log post"),
)


def _fmt(v) -> str:
    if v is None:
        return "never"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return "nan"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if 0 < abs(v) < 0.005:
        return f"{v:.0e}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def best_variants(results, n: int = 3) -> list[str]:
    """Names of the ``n`` variants meeting most targets (ties: lower in-sample Brier)."""
    ranked = sorted(results, key=lambda r: (-r[1]["targets_met"], r[1]["brier"]))
    return [r[0].name for r in ranked[:n]]


def markdown_table(header, rows) -> list[str]:
    """Markdown table lines: ``header`` names, then one line per row (numbers via ``_fmt``)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |"
            for row in rows]
    return out


def write_markdown(path: Path, results, targets, command: str) -> None:
    """Write the report: summary of all variants, targets, per-episode and stage-mean tables."""
    by_name = {r[0].name: r for r in results}
    lines = [
        "# Compulsion screen: observables x designs (EM point estimates)",
        "",
        f"Regenerate: `{command}` (from the repository root; about "
        f"{sum(r[1]['seconds'] for r in results):.0f} s of CPU in all). Code and definitions: "
        "`bench/compulsion/` (README there). Every variant tried is listed with every score.",
        "",
        "In sample: S&P 500 1985-2018, p_compulsion = Pr(#{t in D: stage_t = FF} >= 0.5 |D| "
        "| y_1..y_T) from 500 FFBS paths at the EM point estimate; AUC / Brier over the "
        "catalogue's F (4) vs D (7) S&P 500 episodes; min F / max D = the worst forced and "
        "discretionary episode; ff share = share of days with smoothed Pr(FF) > 0.5; ff mean, "
        "2017, 2005-06 = mean smoothed Pr(FF) over all days / 2017 / 2005-2006; ff dur = "
        "the expected forced-flow stay, 1/(1 - P[FF,FF]) days (m/(1 - P[FF,FF]) with m "
        "phases); VW = p_compulsion of the VW squeeze from a VW 2005-2012 fit "
        "(US-only macro columns dropped). Out of time (oot): standardised and fitted on "
        "1985-2006 only, filter run forward with fixed parameters; scores are **p_filtered** = "
        "mean over the episode's days of Pr(stage_t = FF | y_1..y_t); AUC/Brier over Quant "
        "quake, Lehman (F) vs 2016 scare, Q4 2018, post-election rally (D); cross = first 2008 "
        "day with filtered Pr(FF) > 0.5; lead = trading days from it to the STLFSI peak week "
        "(Fri 2008-10-17), positive = earlier; oot ff share = share of 2007-2018 days with "
        "filtered Pr(FF) > 0.5. met = targets met out of "
        f"{len(targets)}. log post = EM log posterior (its Dirichlet terms unnormalised: "
        "compare it only between variants with the same prior on P); log lik = "
        "log p(y | theta) at the EM estimate (not in files written before round 11).",
        "",
        "Interpretation, ablations and the sensitivity to EM starts: `bench/compulsion/README.md`"
        " (section Findings, written from this run).",
        "",
        "## All variants",
        "",
    ]
    header = ["variant", "observables", "design"] + [h for _, h in _SUMMARY_COLS]
    rows = []
    for variant, summ, *_ in results:
        d = variant.design
        design = (f"K={d.n_stages} {d.transitions} order={'/'.join(map(str, d.order))} "
                  + (f"dur={'/'.join(f'{x:g}' for x in d.durations)} n={d.strength:g}"
                     if d.durations else f"stick={d.stickiness:g}") + (" +AR" if d.ar else ""))
        rows.append([variant.name, ", ".join(variant.columns), design]
                    + [summ[k] for k, _ in _SUMMARY_COLS])
    lines += markdown_table(header, rows)
    lines += ["", "## Targets (issue) and distance of each variant", "",
              "Target values: " + "; ".join(f"{k} {'>=' if kind == 'min' else '<='} {t}"
                                            for k, kind, t in targets) + ".",
              "Cells: the value minus the target in the failing direction (0 = met).", ""]
    rows = []
    for variant, summ, *_ in results:
        cells = [variant.name]
        for k, kind, t in targets:
            v = summ[k]
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                cells.append("miss")
                continue
            gap = (t - v) if kind == "min" else (v - t)
            cells.append(0.0 if gap <= 0 else float(gap))
        rows.append(cells)
    lines += markdown_table(["variant"] + [k for k, _, _ in targets], rows)
    show = ["base"] + [n for n in best_variants(results, 4) if n != "base"]
    show = [n for n in show if n in by_name]
    lines += ["", "## Per-episode scores: baseline and the variants meeting most targets", "",
              "In-sample p_compulsion (S&P 500; VW from its own fit):", ""]
    eps = {n: by_name[n][2].set_index("episode") for n in show}
    first = eps[show[0]]
    rows = [[e, first.loc[e, "expected"], int(first.loc[e, "days"])]
            + [float(eps[n].loc[e, "p_compulsion"]) for n in show] for e in first.index]
    rows.append(["Volkswagen squeeze 2008 (vw)", "F+", 4] + [by_name[n][1]["vw"] for n in show])
    lines += markdown_table(["episode", "label", "days"] + show, rows)
    lines += ["", "Out of time, **p_filtered** (mean filtered Pr(FF) over the episode):", ""]
    oot = {n: by_name[n][3].set_index("episode") for n in show}
    first = oot[show[0]]
    rows = [[e, first.loc[e, "expected"]] + [float(oot[n].loc[e, "p_filtered"]) for n in show]
            for e in first.index]
    lines += markdown_table(["episode", "label"] + show, rows)
    lines += ["", "## Stage means (in-sample fit) of every observable, P[k,k] and AR terms", "",
              "Standardised units (mean 0, sd 1 over 1985-2018); AR terms on returns scaled by "
              "their sd. All variants' stage means are in the CSV (scope `stage_mean:*`). For "
              "an observable with an AR(1) emission (`Design.lag`, round 14) the entry is the "
              "intercept `mu_kd`; the stage's level is `mu_kd / (1 - phi_d)`, `phi_d` in the "
              "CSV (scope `ar1_phi`).", ""]
    for n in show:
        fit = by_name[n][4]
        names = NAMES[: fit.mu.shape[0]]
        cols = list(fit.columns) + ["P_stay"]
        frame = pd.DataFrame(fit.mu, index=names, columns=fit.columns)
        frame["P_stay"] = fit.P.diagonal()
        if fit.beta is not None:
            for j, b in enumerate(("ar_b0", "ar_b1", "ar_b2")):
                frame[b] = fit.beta[:, j]
            frame["ar_sd"] = fit.s
            cols += ["ar_b0", "ar_b1", "ar_b2", "ar_sd"]
        lines += [f"`{n}`:", ""]
        lines += markdown_table(["stage"] + cols,
                        [[s] + [float(frame.loc[s, c]) for c in cols] for s in names])
        lines.append("")
    Path(path).write_text("\n".join(lines) + "\n")
