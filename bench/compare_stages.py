"""How many stages do the S&P 500 data support? K = 2..6, by PSIS-LOO and leave-future-out.

Each K (``ModelSpec(n_stages=K)``: the default model's observables, identification, sequential
ladder and framework duration prior; the names are ``stressflow.models.dims.stage_names``) is
fitted twice on the bundled S&P 500:

- to ``--start .. --end`` with the one-step-ahead ``log_likelihood`` group, compared by
  PSIS-LOO (:func:`stressflow.inference.apps.comparison.compare_fits`; in-sample predictive
  fit with a complexity correction, not an out-of-sample test) and scored on the episode
  catalogue after fitting (the labels are read, never fitted to);
- to ``--start .. --cut``, then filtered forward to ``--end`` with those draws and no refit:
  the exact leave-future-out score ``sum_t log mean_s p(y_t | y_1..y_{t-1}, theta_s)`` over
  the days after the cut (Bürkner, Gabry & Vehtari 2020, without refits inside the test
  period; ``bench.tvtp.compare._lfo``).

Run from the repository root (about 15 minutes on 2 cores)::

    .venv/bin/python -m bench.compare_stages

Writes ``bench/results/compare_stages.md`` and ``compare_stages.csv``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from stressflow.data import prepare
from stressflow.inference import check_fit, fit
from stressflow.inference.apps.catalogue import score_catalogue
from stressflow.inference.apps.comparison import LOO_CAVEAT, compare_fits
from stressflow.inference.apps.evaluation import evaluation_metrics
from stressflow.models import dims
from stressflow.models.spec import ModelSpec

from bench.common import markdown_table
from bench.tvtp.compare import _lfo

RESULTS = Path(__file__).resolve().parent / "results"


def _fit(prepared, spec, args, *, pointwise: bool):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(prepared, spec=spec, chains=args.chains, draws=args.draws, tune=args.tune,
                  seed=args.seed, pointwise_loglik=pointwise)
    return res, time.perf_counter() - t0


def _catalogue_figures(res) -> dict:
    table = score_catalogue(res, market="sp500")
    metrics = evaluation_metrics(table, prob_column="p_compulsion")
    scored = table[table["expected"].isin(("F-", "F+", "D"))]
    forced = scored[scored["expected"].str.startswith("F")]["p_compulsion"]
    disc = scored[scored["expected"] == "D"]
    worst = disc.loc[disc["p_compulsion"].idxmax()] if len(disc) else None
    p_ff = res["stages"]["smoothed"].sel({dims.STAGE: dims.FORCED_FLOW}).values
    return {
        "forced-flow share": float((p_ff > 0.5).mean()),
        "AUC": metrics["auc"],
        "F >= 0.7": f"{metrics['n_forced_ge_hi']}/{metrics['n_forced']}",
        "D <= 0.3": f"{metrics['n_discretionary_le_lo']}/{metrics['n_discretionary']}",
        "lowest F p_compulsion": float(forced.min()) if len(forced) else np.nan,
        "largest D p_compulsion": (f"{worst['p_compulsion']:.2f} ({worst['episode']})"
                                   if worst is not None else ""),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stages", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    p.add_argument("--start", default="1990-01-01")
    p.add_argument("--cut", default="2006-12-31")
    p.add_argument("--end", default="2018-12-31")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    specs = {k: ModelSpec(n_stages=k) for k in args.stages}
    observables = ModelSpec().observables
    prep_all = prepare("sp500", start=args.start, end=args.end, observables=observables)
    prep_cut = prepare("sp500", start=args.start, end=args.cut, observables=observables)
    prep_after = prepare("sp500", start=args.start, end=args.end, observables=observables,
                         transform=prep_cut.transform)
    fits, rows = {}, {}
    for k, spec in specs.items():
        res, wall = _fit(prep_all, spec, args, pointwise=True)
        diag = check_fit(res, warn=False)
        cut, wall_cut = _fit(prep_cut, spec, args, pointwise=False)
        diag_cut = check_fit(cut, warn=False)
        lfo, n_after = _lfo(cut, prep_after, args.cut)
        name = f"K = {k}"
        fits[name] = res
        rows[name] = {"stages": ", ".join(spec.stage_names),
                      **_catalogue_figures(res),
                      "max R-hat": round(float(diag.max_rhat), 4),
                      "divergences": int(diag.divergences),
                      "fit wall s": round(wall, 1),
                      "LFO log score": round(lfo, 1), "LFO days": n_after,
                      "cut fit max R-hat": round(float(diag_cut.max_rhat), 4),
                      "cut fit wall s": round(wall_cut, 1)}
        print(name, rows[name], flush=True)
    loo = compare_fits(fits)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.insert(1, "elpd_loo", loo["elpd_loo"].round(0))
    table.insert(2, "se", loo["se"].round(0))
    table.insert(3, "LOO difference to the best (se)",
                 [f"{d:,.0f} ({s:,.0f})" for d, s in zip(loo.loc[table.index, "elpd_diff"],
                                                        loo.loc[table.index, "dse"],
                                                        strict=True)])
    table.insert(4, "p_loo", loo["p_loo"].round(0))
    table.insert(5, "Pareto k > 0.7", loo["n_k_over_0.7"])
    best_lfo = table["LFO log score"].max()
    table.insert(table.columns.get_loc("LFO log score") + 1, "LFO difference to the best",
                 (table["LFO log score"] - best_lfo).round(1))
    table.index.name = "model"
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "compare_stages.csv")
    text = "\n".join([
        f"# Number of stages: S&P 500 {args.start} .. {args.end} (cut {args.cut})", "",
        f"`.venv/bin/python -m bench.compare_stages` ({args.chains} chains x {args.draws} draws "
        f"after {args.tune} tuning steps, seed {args.seed}; the default model's five "
        "observables, identification, sequential ladder and framework duration prior, "
        "`ModelSpec(n_stages=K)`). PSIS-LOO on the fits to the whole window; LFO = "
        "sum over the days after the cut of log mean_s p(y_t | y_1..y_{t-1}, theta_s) with "
        "the parameters of the fit to the cut. Catalogue columns from `score_catalogue` on "
        "the whole-window fits (labels read after fitting).", "", LOO_CAVEAT, "",
        markdown_table(table.reset_index()), ""])
    (RESULTS / "compare_stages.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
