"""Leave-future-out comparison of model variants on the bundled S&P 500.

Each variant (the default; four stages; Student-t emissions; ladder TVTP on VIX; all with the
default's five observables) is fitted to ``--start .. --cut`` and its filter run forward to
``--end`` with those draws and no refit (what ``stressflow update`` does). The score is the
exact leave-future-out log predictive density with fixed parameters,
``sum_t log mean_s p(y_t | y_1..y_{t-1}, theta_s)`` over the days after the cut (Bürkner, Gabry
& Vehtari 2020, without refits inside the test period; ``bench.tvtp.compare._lfo``). The
in-sample PSIS-LOO of the same variants is in ``bench/results/compare_sp500.md``.

Run from the repository root (about 8 minutes on 2 cores)::

    .venv-bench/bin/python -m bench.compare_models   # the bench environment (tabulate)

Writes ``bench/results/compare_lfo.md``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd
from stressflow.data import prepare
from stressflow.inference import check_fit, fit
from stressflow.inference.fitting.fit import prepare_options
from stressflow.models.spec import ModelSpec

from bench.tvtp.compare import _lfo

RESULTS = Path(__file__).resolve().parent / "results"

VARIANTS = {
    "default (five Gaussian stages, constant P)": ModelSpec(),
    "four stages": ModelSpec(discretionary_stage=False, stage_durations=(250.0, 250.0, 20.0, 7.0)),
    "five Student-t stages": ModelSpec(emission="student_t"),
    "five stages, ladder TVTP on VIX": ModelSpec(transition_model="ladder",
                                                 transition_covariates=("vix",)),
}


def write_report(rows, start, cut, end, chains, draws, tune) -> str:
    """Write ``bench/results/compare_lfo.md`` from the per-variant rows; returns its text."""
    table = pd.DataFrame(rows)
    best = table["LFO log score"].max()
    table.insert(2, "difference to the best", (table["LFO log score"] - best).round(1))
    text = "\n".join([
        f"# Leave-future-out: S&P 500 fitted {start} .. {cut}, scored to {end}", "",
        f"{chains} chains x {draws} draws after {tune} tuning steps, seed 1; "
        "five observables (the default's). Regenerate: `.venv-bench/bin/python -m "
        "bench.compare_models`. Score: sum over the days after the cut of "
        "log mean_s p(y_t | y_1..y_{t-1}, theta_s), parameters fixed at the cut.", "",
        table.to_markdown(index=False), ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare_lfo.md").write_text(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--start", default="1990-01-01")
    p.add_argument("--cut", default="2006-12-31")
    p.add_argument("--end", default="2018-12-31")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    args = p.parse_args(argv)
    rows = []
    for name, spec in VARIANTS.items():
        prep_cut = prepare("sp500", start=args.start, end=args.cut, **prepare_options(spec))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit(prep_cut, spec=spec, chains=args.chains, draws=args.draws,
                      tune=args.tune, seed=1)
        wall = time.perf_counter() - t0
        diag = check_fit(res, warn=False)
        prep_all = prepare("sp500", start=args.start, end=args.end, transform=prep_cut.transform)
        lfo, n_after = _lfo(res, prep_all, args.cut)
        rows.append({"model": name, "LFO log score": round(lfo, 1), "days scored": n_after,
                     "max R-hat": round(diag.max_rhat, 4), "min bulk ESS": diag.min_ess_bulk,
                     "divergences": diag.divergences, "fit wall s": round(wall, 1)})
        print(rows[-1], flush=True)
    write_report(rows, args.start, args.cut, args.end, args.chains, args.draws, args.tune)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
