"""Run the compulsion screen and write ``bench/results/compulsion_screen.{csv,md}``.

Usage (from the repository root)::

    .venv/bin/python -m bench.compulsion.run            # every variant
    .venv/bin/python -m bench.compulsion.run base k5_surprise   # a subset
    .venv/bin/python -m bench.compulsion.run --out compulsion_screen_round2 base k5_sb_strong
    .venv/bin/python -m bench.compulsion.run --volume-dropouts mask --out x k5_price_noar_strong
    .venv/bin/python -m bench.compulsion.run --seeds 32 --out x k5_bond_gated  # 32 k-means seeds

``--volume-dropouts mask`` scores the variants with the volume and impact of early closes and
bad volume rows masked (``stressflow.data.dropouts``; ``prepare``'s default keeps them).

With no arguments ``compulsion_screen.{csv,md}`` is rewritten; with variant names the scores
go to ``compulsion_screen_subset.{csv,md}``, or to the stem given by ``--out``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import scores
from .em import NAMES
from .features import raw_observables
from .report import write_markdown
from .variants import VARIANTS

RESULTS = Path(__file__).resolve().parents[1] / "results"
COMMAND = ".venv/bin/python -m bench.compulsion.run"

#: Targets of the issue: (score, kind, threshold); kind "min" = at least, "max" = at most.
TARGETS = (
    ("min_F", "min", 0.7), ("max_D", "max", 0.3), ("vw", "min", 0.7),
    ("ff_share", "max", 0.05), ("calm2017", "max", 0.02), ("calm0506", "max", 0.02),
    ("oot_lehman", "min", 0.7), ("oot_quant", "min", 0.7), ("oot_q4_2018", "max", 0.3),
    ("oot_scare_2016", "max", 0.3), ("lead_sep", "min", 1),
)


def _pick(eps: pd.DataFrame, name: str, col: str) -> float:
    hit = eps.loc[eps["episode"] == name, col]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def score_variant(variant, raw, raw_vw) -> tuple[dict, pd.DataFrame, pd.DataFrame, object]:
    """All scores of one variant: ``(summary, in-sample episodes, out-of-time episodes, fit)``."""
    t0 = time.time()
    summ, eps, fit = scores.in_sample(raw, variant.columns, variant.design)
    oot, eps_oot = scores.out_of_time(raw, variant.columns, variant.design)
    vw, vw_note = scores.vw_score(raw_vw, variant.columns, variant.design)
    summ.update(oot)
    f = eps.loc[eps["expected"].isin(scores.FORCED), "p_compulsion"]
    d = eps.loc[eps["expected"] == "D", "p_compulsion"]
    summ.update({
        "min_F": float(f.min()), "max_D": float(d.max()), "vw": vw, "vw_note": vw_note,
        "oot_lehman": _pick(eps_oot, "Lehman / GFC 2008", "p_filtered"),
        "oot_quant": _pick(eps_oot, "Quant quake 2007", "p_filtered"),
        "oot_q4_2018": _pick(eps_oot, "Q4 2018 selloff", "p_filtered"),
        "oot_scare_2016": _pick(eps_oot, "Oil / China growth scare 2016", "p_filtered"),
        "seconds": time.time() - t0,
    })
    met = 0
    for key, kind, thr in TARGETS:
        v = summ[key]
        ok = v is not None and np.isfinite(v) and (v >= thr if kind == "min" else v <= thr)
        met += bool(ok)
    summ["targets_met"] = met
    return summ, eps, eps_oot, fit


def _long_rows(variant, summ, eps, eps_oot, fit) -> list[dict]:
    base = {"variant": variant.name}
    rows = [{**base, "scope": "summary", "item": k, "score": v} for k, v in summ.items()]
    rows += [{**base, "scope": "in_sample_p_compulsion", "item": r.episode,
              "score": r.p_compulsion} for r in eps.itertuples()]
    rows += [{**base, "scope": "out_of_time_p_filtered", "item": r.episode,
              "score": r.p_filtered} for r in eps_oot.itertuples()]
    names = NAMES[: fit.mu.shape[0]]
    if fit.phi is not None:  # AR(1) observables: stage_mean is the intercept mu_kd
        phi = fit.phi if fit.phi.ndim == 2 else fit.phi[None, :]  # (K or 1, D)
        rows += [{**base, "scope": "ar1_phi" if len(phi) == 1 else f"ar1_phi:{names[k]}",
                  "item": col, "score": float(phi[k, d])}
                 for k in range(len(phi)) for d, col in enumerate(fit.columns) if fit.lag[d]]
    for k, stage in enumerate(names):
        for d, col in enumerate(fit.columns):
            rows.append({**base, "scope": f"stage_mean:{stage}", "item": col,
                         "score": float(fit.mu[k, d])})
        rows.append({**base, "scope": f"stage_mean:{stage}", "item": "P_stay",
                     "score": float(fit.P[k, k])})
        if fit.beta is not None:
            for j, b in enumerate(("b0", "b1_ret_lag", "b2_vret_lag")):
                rows.append({**base, "scope": f"stage_mean:{stage}", "item": f"ar_{b}",
                             "score": float(fit.beta[k, j])})
            rows.append({**base, "scope": f"stage_mean:{stage}", "item": "ar_sd",
                         "score": float(fit.s[k])})
    return rows


def main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")  # DataWarnings of prepare() on the bundled files
    out, dropouts, options = None, "keep", []
    while argv[:1] in (["--out"], ["--volume-dropouts"], ["--seeds"]):
        if argv[0] == "--out":
            out = argv[1]
        elif argv[0] == "--seeds":  # k-means seeds 0..N-1 of the EM starts (default 2)
            scores.SEEDS = tuple(range(int(argv[1])))
            options += argv[:2]
        else:
            dropouts = argv[1]
            options += argv[:2]
        argv = argv[2:]
    wanted = argv or [v.name for v in VARIANTS]
    unknown = sorted(set(wanted) - {v.name for v in VARIANTS})
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {[v.name for v in VARIANTS]}")
    raw = raw_observables("sp500", volume_dropouts=dropouts)
    raw_vw = raw_observables("vw", macro=False, volume_dropouts=dropouts)
    rows, results = [], []
    for variant in VARIANTS:
        if variant.name not in wanted:
            continue
        # one thread for BLAS and OpenMP: the harness's arrays are small, and beside another
        # job on the cores their threads' spin-waiting made a variant take 138 s, not 29 s
        with threadpool_limits(limits=1):
            summ, eps, eps_oot, fit = score_variant(variant, raw, raw_vw)
        results.append((variant, summ, eps, eps_oot, fit))
        rows += _long_rows(variant, summ, eps, eps_oot, fit)
        print(f"{variant.name:18s} auc {summ['auc']:.2f} brier {summ['brier']:.3f} "
              f"ff {summ['ff_share']:.3f} dur {summ['ff_duration']:.1f} "
              f"calm17 {summ['calm2017']:.3f} vw {summ['vw']:.2f} "
              f"oot_auc {summ['oot_auc']:.2f} cross {summ['cross_2008']} {summ['cross_sep']} "
              f"met {summ['targets_met']}/{len(TARGETS)} ({summ['seconds']:.1f} s)", flush=True)
    RESULTS.mkdir(exist_ok=True)
    # a subset of variants goes to its own files (the full screen's files are left as they are)
    stem = out or ("compulsion_screen_subset" if argv else "compulsion_screen")
    pd.DataFrame(rows).to_csv(RESULTS / f"{stem}.csv", index=False)
    command = " ".join([COMMAND, *options, *(["--out", out] if out else []), *argv])
    write_markdown(RESULTS / f"{stem}.md", results, TARGETS, command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
