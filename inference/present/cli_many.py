"""``stressflow backtest`` and ``stressflow fit-many``: many fits, in parallel on Dask.

The work is :func:`stressflow.inference.apps.backtest.backtest` and
:func:`stressflow.inference.apps.many.fit_many` / :func:`~stressflow.inference.apps.many
.fit_windows`; this module parses the options, prints a table and writes the files.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pandas as pd
from stressflow.inference.present.console import (
    add_column_options,
    columns_from_args,
    data_message,
    show_warning,
)

__all__ = ["register_cli"]

_REFIT_COLUMNS = ["refit_date", "train_start", "train_end", "n_train_days", "max_rhat",
                  "divergences", "ok"]
_TASK_COLUMNS = ["status", "fit_start", "fit_end", "n_days", "max_rhat", "min_ess_bulk",
                 "divergences", "wall_s", "worker", "worker_task", "compile_cached"]


def _add_fit_options(p) -> None:
    from stressflow.inference.present.model_options import add_model_options

    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spread-column", help="column to use as the spread observable")
    add_column_options(p)
    add_model_options(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int,
                       help="run the fits on a new local Dask cluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the fits on an existing Dask cluster (e.g. tcp://host:8786)")
    p.add_argument("--threads-per-task", type=int, default=1,
                   help="chains each fit samples at once on a worker (default 1)")


def _fit_kwargs(args) -> dict:
    from stressflow.inference.present.model_options import spec_from_args

    kwargs = {"spec": spec_from_args(args), "chains": args.chains, "draws": args.draws,
              "tune": args.tune, "seed": args.seed}
    if args.spread_column:
        kwargs["spread_column"] = args.spread_column
    columns = columns_from_args(args)
    if columns or args.date_column != "date":
        kwargs.update(columns=columns, date_column=args.date_column)
    return kwargs


def _table(frame: pd.DataFrame) -> str:
    shown = frame.copy()
    floats = shown.select_dtypes("float").columns
    shown[floats] = shown[floats].round(3)
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.max_rows", 500):
        return shown.to_string()


def _cmd_backtest(args) -> int:
    from stressflow.data import DataError
    from stressflow.inference.apps.backtest import backtest
    from stressflow.inference.integrity import atomic_write

    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        print(f"stressflow backtest: --out must end in .csv or .parquet, got {out}",
              file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = show_warning
            table = backtest(
                args.data, start=args.start, end=args.end, refit_every=args.refit_every,
                window=args.window, window_days=args.window_days, train_start=args.train_start,
                workers=args.workers, scheduler=args.scheduler,
                threads_per_task=args.threads_per_task, **_fit_kwargs(args),
            )
        refits = pd.DataFrame(table.attrs["refits"])
        with atomic_write(out) as tmp:
            if out.suffix == ".csv":
                table.to_csv(tmp, index=False, date_format="%Y-%m-%d")
            else:
                table.to_parquet(tmp, index=False)
        side = out.with_name(out.name + ".refits.json")
        with atomic_write(side) as tmp:
            tmp.write_text(json.dumps(table.attrs["refits"], indent=1), encoding="utf-8")
    except (DataError, ValueError, FileNotFoundError, OSError, ImportError) as exc:
        print(f"stressflow backtest: {data_message(str(exc))}", file=sys.stderr)
        return 1
    print(_table(refits[_REFIT_COLUMNS]))
    last = table.iloc[-1]
    print(f"\n{len(table)} evaluation days, {len(refits)} refits "
          f"({int((~refits['ok']).sum())} with convergence problems); last day "
          f"{pd.Timestamp(last['date']):%Y-%m-%d}: p_compulsion = Pr(stage_t = forced_flow | "
          f"y_1..y_t) {last['p_compulsion']:.3f}")
    print(f"wrote {out} and {side}")
    return 0


def _windows(args) -> list | None:
    from stressflow.inference.apps.many import rolling_windows

    if (args.window is not None or args.rolling_days is not None) and args.start is not None:
        raise ValueError("--start sets the assets' fit window; windows have their own starts")
    if args.window is not None and args.rolling_days is not None:
        raise ValueError("give --window START:END or --rolling-days, not both")
    if args.window is not None:
        pairs = []
        for text in args.window:
            parts = text.split(":")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"--window must be START:END, got {text!r}")
            pairs.append(tuple(parts))
        return pairs
    if args.rolling_days is not None:
        if args.step is None:
            raise ValueError("--rolling-days needs --step (rows between window ends)")
        return rolling_windows(args.data[0], window_days=args.rolling_days, step=args.step,
                               n_windows=args.n_windows, end=args.end,
                               columns=columns_from_args(args), date_column=args.date_column)
    return None


def _assets(sources: list[str]) -> dict[str, str]:
    tasks: dict[str, str] = {}
    for text in sources:
        name, source = text.split("=", 1) if "=" in text else (Path(text).stem, text)
        if name in tasks:
            raise ValueError(f"the task name {name!r} is given twice; write NAME=SOURCE")
        tasks[name] = source
    return tasks


def _cmd_fit_many(args) -> int:
    from stressflow.data import DataError
    from stressflow.inference.apps.many import SUMMARY_FILE, fit_many, fit_windows

    try:
        windows = _windows(args)
        if windows is not None and len(args.data) != 1:
            raise ValueError("windows (--window, --rolling-days) are of one dataset: give one "
                             f"DATA, got {len(args.data)}")
        where = {"out_dir": args.out_dir, "workers": args.workers, "scheduler": args.scheduler,
                 "threads_per_task": args.threads_per_task, "progress": not args.quiet}
        if windows is None:
            ds = fit_many(_assets(args.data), start=args.start, end=args.end, **where,
                          **_fit_kwargs(args))
        else:
            ds = fit_windows(args.data[0], windows, **where, **_fit_kwargs(args))
    except (DataError, ValueError, FileNotFoundError, OSError, ImportError) as exc:
        print(f"stressflow fit-many: {data_message(str(exc))}", file=sys.stderr)
        return 1
    dim = ds.attrs["dim"]
    print(_table(ds[_TASK_COLUMNS].to_dataframe()))
    failed = [str(n) for n, s in zip(ds[dim].values, ds["status"].values, strict=True)
              if s in ("failed", "error")]
    n_fits = int((ds["file"] != "").sum())
    print(f"\nwrote {n_fits} fit file(s) and {Path(args.out_dir) / SUMMARY_FILE}")
    for name in failed:
        message = str(ds["message"].sel({dim: name}).values)
        print(f"{dim} {name} failed: {message}", file=sys.stderr)
    return 1 if failed else 0


def register_cli(subparsers) -> None:
    """Add ``stressflow backtest`` and ``stressflow fit-many``."""
    p = subparsers.add_parser(
        "backtest", help="refit every N days on past data only and filter forward (out of "
                         "sample); refits in parallel with --workers or --scheduler")
    p.add_argument("data", help="bundled dataset name or CSV/Parquet file")
    p.add_argument("--start", required=True, help="first evaluation date (YYYY-MM-DD)")
    p.add_argument("--end", required=True, help="last evaluation date (YYYY-MM-DD)")
    p.add_argument("--refit-every", type=int, required=True, help="trading days between refits")
    p.add_argument("--window", choices=("expanding", "rolling"), default="expanding",
                   help="training window (default expanding)")
    p.add_argument("--window-days", type=int, help="rows of a rolling training window")
    p.add_argument("--train-start", help="first date of an expanding training window")
    _add_fit_options(p)
    p.add_argument("--out", required=True,
                   help="output .csv or .parquet (one row per evaluation date); the refits' "
                        "diagnostics go to <out>.refits.json")
    p.set_defaults(func=_cmd_backtest)

    p = subparsers.add_parser(
        "fit-many", help="fit several datasets, or several windows of one, in parallel on Dask",
        description="Assets: DATA is NAME=SOURCE or SOURCE (a bundled dataset name or a file; "
                    "the name is then the dataset name or file stem). Windows (one DATA): "
                    "--window START:END (repeat it) or --rolling-days N --step N. Writes "
                    "<out-dir>/<name>.nc per fit and <out-dir>/summary.nc.")
    p.add_argument("data", nargs="+", help="NAME=SOURCE or SOURCE, one per asset")
    p.add_argument("--start", help="first date of every asset's fit window")
    p.add_argument("--end", help="last date of every asset's fit window (windows: the last "
                                 "end of --rolling-days)")
    p.add_argument("--window", action="append", metavar="START:END",
                   help="a fit window of the one DATA (repeat for more)")
    p.add_argument("--rolling-days", type=int, help="rows of each rolling window")
    p.add_argument("--step", type=int, help="rows between the ends of rolling windows")
    p.add_argument("--n-windows", type=int, help="at most this many rolling windows (the last)")
    _add_fit_options(p)
    p.add_argument("--out-dir", required=True, help="folder of the fit files and summary.nc")
    p.add_argument("--quiet", action="store_true", help="no line per finished fit")
    p.set_defaults(func=_cmd_fit_many)
