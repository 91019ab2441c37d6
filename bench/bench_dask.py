"""Rolling refits of the bundled S&P 500: serial in one process against Dask workers.

Fits ``--n-windows`` rolling windows of ``--window-days`` trading days (default 40 windows of
1,260 days, i.e. 5 years, ending every 63 trading days up to 2018-12-31) with the default model
and writes ``bench/results/dask.md`` and ``dask.csv`` (one row per fit and mode):

- ``serial``: one process fits the windows one after the other (``fit_task``, the function a
  worker runs, with ``fit``'s default ``cores``: all chains at once up to the CPU count), each
  fit saved like the workers' are;
- ``dask``: :func:`stressflow.inference.apps.many.fit_windows` on a new local cluster of
  ``--workers`` single-threaded worker processes (``threads_per_task=1``), cluster start
  included in the wall time.

Reported: wall time of each mode, the first and the later tasks of each worker (the first pays
the compile), the per-task overhead (worker time not spent inside a fit: ``(wall x workers -
sum of task times) / tasks``), each process's peak resident memory (``VmHWM``, read in the task)
and whether both modes gave the same numbers (same seed).

Usage::

    .venv/bin/python bench/bench_dask.py                      # the benchmark (~15 min on 2 cores)
    .venv/bin/python bench/bench_dask.py --n-windows 4 --draws 200 --tune 300   # a smoke run

A run with fewer windows or draws than the defaults is labelled a smoke run in its output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from stressflow.data import read_prices
from stressflow.inference.apps.cluster import open_client
from stressflow.inference.apps.many import fit_task, fit_windows, rolling_windows

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = {"n_windows": 40, "window_days": 1260, "step": 63, "chains": 4, "draws": 1000,
            "tune": 2000}
COLUMNS = ["mode", "window", "status", "worker", "worker_task", "wall_s", "compile_s",
           "compile_cached", "sampling_s", "peak_rss_mb", "max_rhat", "min_ess_bulk",
           "divergences"]


def run_serial(prices, windows, fit_kwargs, out_dir: Path) -> tuple[pd.DataFrame, float, dict]:
    rows, probs = [], {}
    t0 = time.perf_counter()
    for start, end in windows:
        name = f"{start:%Y-%m-%d}_{end:%Y-%m-%d}"
        rec = fit_task(prices, start=start, end=end, cut_at_end=True,
                       out_path=out_dir / f"{name}.nc", fit_kwargs=fit_kwargs)
        probs[name] = rec.get("filtered")
        rows.append({"mode": "serial", "window": name, **{c: rec.get(c) for c in COLUMNS[2:]}})
        print(f"serial {name}: {rec['status']} in {rec['wall_s']:.1f} s", file=sys.stderr)
    return pd.DataFrame(rows), time.perf_counter() - t0, probs


def run_dask(prices, windows, fit_kwargs, workers: int, out_dir: Path):
    t0 = time.perf_counter()
    with open_client(workers) as client:
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        ds = fit_windows(prices, windows, out_dir=out_dir, scheduler=client,
                         threads_per_task=1, **fit_kwargs)
        fits_wall = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    frame = ds[COLUMNS[2:]].to_dataframe().reset_index()
    frame.insert(0, "mode", "dask")
    frame = frame[COLUMNS]
    probs = {str(n): ds["filtered"].sel(window=n).dropna("time", how="all").values
             for n in ds["window"].values}
    return frame, wall, started, fits_wall, probs


def describe(frame: pd.DataFrame, wall: float, n_workers: int) -> dict:
    first = frame[frame["worker_task"] == 1]
    later = frame[frame["worker_task"] > 1]
    busy = frame["wall_s"].sum()
    return {
        "wall_s": wall,
        "tasks": len(frame),
        "first_task_s": first["wall_s"].mean(),
        "later_task_s": later["wall_s"].mean() if len(later) else float("nan"),
        "first_compile_s": first["compile_s"].mean(),
        "later_compile_s": later["compile_s"].mean() if len(later) else float("nan"),
        "overhead_per_task_s": (wall * n_workers - busy) / len(frame),
        "peak_rss_mb": "; ".join(f"{w}: {m:.0f}" for w, m in
                                 frame.groupby("worker")["peak_rss_mb"].max().items()),
        "not_ok": int((frame["status"] != "ok").sum()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-windows", type=int, default=DEFAULTS["n_windows"])
    p.add_argument("--window-days", type=int, default=DEFAULTS["window_days"])
    p.add_argument("--step", type=int, default=DEFAULTS["step"],
                   help="trading days between window ends")
    p.add_argument("--end", default="2018-12-31", help="end of the last window")
    p.add_argument("--chains", type=int, default=DEFAULTS["chains"])
    p.add_argument("--draws", type=int, default=DEFAULTS["draws"])
    p.add_argument("--tune", type=int, default=DEFAULTS["tune"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-serial", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of dask.md / dask.csv")
    args = p.parse_args(argv)

    smoke = any(getattr(args, k) < v for k, v in DEFAULTS.items() if k != "step")
    prices = read_prices("sp500")
    windows = rolling_windows(prices, window_days=args.window_days, step=args.step,
                              n_windows=args.n_windows, end=args.end)
    fit_kwargs = {"chains": args.chains, "draws": args.draws, "tune": args.tune,
                  "seed": args.seed}
    warnings.simplefilter("ignore")
    load = os.getloadavg()[0]
    summaries, frames = {}, []
    with tempfile.TemporaryDirectory(prefix="bench_dask_") as tmp:
        tmp = Path(tmp)
        serial_probs = None
        if not args.skip_serial:
            (tmp / "serial").mkdir()
            frame, wall, serial_probs = run_serial(prices, windows, fit_kwargs, tmp / "serial")
            frames.append(frame)
            summaries["serial (1 process)"] = describe(frame, wall, 1)
        frame, wall, started, fits_wall, dask_probs = run_dask(
            prices, windows, fit_kwargs, args.workers, tmp / "dask")
        frames.append(frame)
        key = f"dask ({args.workers} workers)"
        summaries[key] = describe(frame, fits_wall, args.workers)
        summaries[key]["wall_s"] = wall
        summaries[key]["cluster_start_s"] = started
    same = "not compared (--skip-serial)"
    if serial_probs is not None:
        diffs = [np.nanmax(np.abs(serial_probs[n] - dask_probs[n])) for n in dask_probs
                 if serial_probs[n] is not None]
        same = f"max |serial - dask| filtered probability {max(diffs) if diffs else np.nan:.3g}"

    table = pd.concat(frames, ignore_index=True)
    args.results.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.results / "dask.csv", index=False)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    label = ("**SMOKE RUN** (fewer windows or draws than the benchmark's defaults: these "
             "figures only show that the script works; rerun with the defaults)\n\n"
             if smoke else "")
    lines = [
        "# Rolling refits: serial against Dask workers (`bench/bench_dask.py`)", "", label
        + f"S&P 500 (`sp500`), {len(windows)} rolling windows of {args.window_days} trading "
        f"days ending every {args.step} days, {windows[0][0]:%Y-%m-%d} .. "
        f"{windows[-1][1]:%Y-%m-%d}; default model, {args.chains} chains x {args.draws} "
        f"draws after {args.tune} tuning steps, seed {args.seed}; {os.cpu_count()} CPUs, load "
        f"average {load:.1f} at the start (other jobs on the machine); commit {commit}.", "",
        "| mode | wall (s) | tasks | first task on a worker (s) | later tasks (s) | compile, "
        "first / later (s) | overhead per task (s) | peak memory per process (MB) | "
        "not ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, s in summaries.items():
        lines.append(
            f"| {mode} | {s['wall_s']:.1f} | {s['tasks']} | {s['first_task_s']:.1f} | "
            f"{s['later_task_s']:.1f} | {s['first_compile_s']:.1f} / {s['later_compile_s']:.2f} "
            f"| {s['overhead_per_task_s']:.2f} | {s['peak_rss_mb']} | {s['not_ok']} |")
    lines += [
        "",
        f"Dask cluster start: {summaries[key]['cluster_start_s']:.1f} s (inside the Dask wall "
        "time). Overhead per task = (wall of the fits x processes - sum of the task times) / "
        "tasks: scheduling, data transfer and the idle tail when the workers finish unevenly. "
        "Peak memory: each process's peak resident set (`VmHWM`, `many.peak_rss_mb`), per "
        "worker name (`local` = the serial process). Same numbers: " + same + ".",
        "",
        "Per-task rows: `dask.csv`.",
    ]
    text = "\n".join(lines) + "\n"
    (args.results / "dask.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
