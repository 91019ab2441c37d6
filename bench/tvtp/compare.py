"""Time-varying transition probabilities on the bundled S&P 500: coefficients and predictive fit.

Fits the default model with a constant P and with covariate-driven transitions (the ``ladder``
and the multinomial ``logit``) to the same days, then compares them by

- PSIS-LOO (arviz-stats) on the ``log_likelihood`` group, whose entries are the one-step-ahead
  predictive densities ``log p(y_t | y_1..y_{t-1}, theta)`` (as the fit stores them). LOO on a
  time series is not out of sample: leaving out day t still conditions the neighbours' terms
  on it; read it as in-sample predictive fit with a complexity correction;
- exact leave-future-out with fixed parameters: each model refitted to the days up to
  ``--cut``, its filter then run forward over the later days with those draws (what
  ``stressflow update`` does), scored by ``sum_t log mean_s p(y_t | y_1..y_{t-1}, theta_s)`` over
  the days after the cut (Bürkner, Gabry & Vehtari 2020, without refits inside the test period).

Run from the repository root: ``.venv/bin/python -m bench.tvtp.compare`` (about 10 minutes on 2
cores). Writes ``bench/results/tvtp.md``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from stressflow.data import prepare
from stressflow.inference import fit
from stressflow.inference.apps.comparison import compare_fits
from stressflow.inference.postprocess.stages import stage_probabilities
from stressflow.inference.postprocess.summaries import transition_coefficients
from stressflow.inference.schema import chain_of_draw, posterior_params, read_spec
from stressflow.models.evaluate import evaluate_draws, model_data
from stressflow.models.spec import ModelSpec

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _lfo(fit_cut, prepared_all, cut) -> tuple[float, int]:
    """Sum over the days after ``cut`` of log mean_s p(y_t | y_1..y_{t-1}, theta_s)."""
    spec = read_spec(fit_cut)
    params, shape = posterior_params(fit_cut["posterior"], spec)
    covs = prepared_all.covariates if spec.time_varying else None
    data = model_data(spec, prepared_all.features, covs)
    n = shape[0] * shape[1]
    res = stage_probabilities(lambda lo, hi: evaluate_draws(spec, params, data, lo, hi), n,
                              (len(prepared_all.features), spec.n_stages), chain_of_draw(shape))
    after = prepared_all.features.index > pd.Timestamp(cut)
    per_day = logsumexp(res.log_norm[:, after], axis=0) - np.log(n)
    return float(per_day.sum()), int(after.sum())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--start", default="1990-01-01")
    p.add_argument("--end", default="2017-10-30", help="TED ends 2017-10-30")
    p.add_argument("--cut", default="2006-12-31")
    p.add_argument("--covariates", default="ted,baa10y,vix,low_vol")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    args = p.parse_args(argv)
    covs = tuple(args.covariates.split(","))
    specs = {
        "constant": ModelSpec(),
        "ladder": ModelSpec(transition_model="ladder", transition_covariates=covs),
        "logit": ModelSpec(transition_model="logit", transition_covariates=covs),
    }
    kw = dict(chains=args.chains, draws=args.draws, tune=args.tune, seed=1)
    lines = [f"# Time-varying transition probabilities: S&P 500 {args.start} .. {args.end}", "",
             f"Covariates: {', '.join(covs)} (standardised over the fit window); "
             f"{args.chains} chains x {args.draws} draws, {args.tune} tuning steps. "
             "Regenerate: `.venv/bin/python -m bench.tvtp.compare`.", ""]
    fits, rows = {}, []
    for name, spec in specs.items():
        prep = prepare("sp500", start=args.start, end=args.end,
                       transition_covariates=covs)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fit(prep, spec=spec, **kw)
        wall = time.perf_counter() - t0
        fits[name] = res
        from stressflow.inference import check_fit

        diag = check_fit(res, warn=False)
        prep_cut = prepare("sp500", start=args.start, end=args.cut, transition_covariates=covs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res_cut = fit(prep_cut, spec=spec, **kw)
        prep_all = prepare("sp500", start=args.start, end=args.end,
                           transform=prep_cut.transform)
        lfo, n_after = _lfo(res_cut, prep_all, args.cut)
        rows.append({"model": name, "wall s": round(wall, 1), "max R-hat": diag.max_rhat,
                     "min bulk ESS": diag.min_ess_bulk, "divergences": diag.divergences,
                     "LFO log score": lfo, "LFO days": n_after,
                     "warnings": len([w for w in caught if "FitWarning" in str(w.category)])})
        if spec.time_varying:
            table = transition_coefficients(res)
            lines += [f"## {name}: transition coefficients", "",
                      table.round(3).to_markdown(index=False), ""]
    cmp = compare_fits(fits)
    lines += ["## PSIS-LOO (one-step-ahead terms; in sample, see the module docstring)", "",
              cmp.round(2).to_markdown(), "",
              "## Diagnostics and leave-future-out (fit to the cut, filter forward, no refit)", "",
              pd.DataFrame(rows).round(4).to_markdown(index=False), ""]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tvtp.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
