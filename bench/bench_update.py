"""Cost of the daily feed update: ``stressflow.inference.update`` one new day at a time.

Fits the bundled S&P 500 over ``--start``..``--end`` (default model, ``--chains`` x ``--draws``
after ``--tune``), then feeds the following ``--days`` trading days one row per call, as a
nightly job would, and reports the wall time of each call (median, 5% / 95% quantiles, the
first call apart) and the time of one call with all the days at once. Each update is checked
by its last date, so a call that silently did nothing would show, and the day-by-day filtered
probabilities are compared with those of the one call.

Usage::

    PYTHONPATH=. .venv/bin/python bench/bench_update.py --out bench/results/update.md

(also run by ``bench/run_all``, from the bench environment)
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", default="1990-01-01")
    parser.add_argument("--end", default="2010-12-31")
    parser.add_argument("--days", type=int, default=2000, help="new days fed one at a time")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=150)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--out", default="bench/results/update.md")
    args = parser.parse_args(argv)

    from stressflow.data import read_prices
    from stressflow.inference import fit, update

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        result = fit("sp500", start=args.start, end=args.end, chains=args.chains,
                     draws=args.draws, tune=args.tune, seed=0, pointwise_loglik=False)
        fit_seconds = time.perf_counter() - t0
    prices = read_prices("sp500")
    rows = prices[prices.index > pd.Timestamp(result.attrs["end"])].iloc[:args.days]
    n_draws = args.chains * args.draws
    seconds = []
    current = result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(len(rows)):
            t0 = time.perf_counter()
            current = update(current, rows.iloc[i:i + 1])
            seconds.append(time.perf_counter() - t0)
            if current.attrs["feed_end"] != str(rows.index[i].date()):
                raise RuntimeError(f"update {i} ended on {current.attrs['feed_end']}, "
                                   f"not {rows.index[i].date()}")
        t0 = time.perf_counter()
        batch = update(result, rows)
        batch_seconds = time.perf_counter() - t0
    # Pr(stage_t = k | y_1..y_t) on every day: fed day by day against all at once
    gap = float(np.max(np.abs(current["stages"]["filtered"].values
                              - batch["stages"]["filtered"].values)))
    ms = 1000 * np.asarray(seconds[1:])
    lines = [
        "# Daily update cost (`bench/bench_update.py`)",
        "",
        f"S&P 500 {args.start}..{args.end} fitted with the default model ({args.chains} chains x "
        f"{args.draws} draws after {args.tune} tuning steps = {n_draws} posterior draws; fit "
        f"{fit_seconds:.1f} s), then the next {len(rows)} trading days "
        f"({rows.index[0].date()}..{rows.index[-1].date()}) fed one row per `update` call.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| one-day update, median (calls 2..{len(rows)}) | {np.median(ms):.1f} ms |",
        f"| 5% / 95% quantile | {np.quantile(ms, 0.05):.1f} / {np.quantile(ms, 0.95):.1f} ms |",
        f"| first call | {1000 * seconds[0]:.1f} ms |",
        f"| all {len(rows)} days in one call | {batch_seconds:.2f} s |",
    ]
    lines.append(f"| largest difference of `Pr(stage_t = k \\| y_1..y_t)`, day by day against "
                 f"one call | {gap:.1e} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
