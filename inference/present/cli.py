"""Command line: ``stressflow fit``, ``summary``, ``datasets``, the result commands of
:mod:`stressflow.inference.present.commands` (``episodes``, ``plot``, ``update``, ``export``,
``compare``), ``evaluate`` (:mod:`~stressflow.inference.present.cli_evaluate`) and the
parallel ``backtest`` and ``fit-many`` (:mod:`~stressflow.inference.present.cli_many`)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from stressflow.data.dropouts import DROPOUT_SD, VOLUME_DROPOUT_MODES
from stressflow.inference.present.console import output_problem, show_progress
from stressflow.inference.present.console import show_warning as _show_warning

__all__ = ["main"]


def _cmd_fit(args) -> int:
    from stressflow.data import DataError, list_datasets
    from stressflow.inference.fitting.fit import fit
    from stressflow.inference.postprocess.summaries import summary
    from stressflow.inference.present.console import (
        columns_from_args,
        data_message,
        read_covariate_file,
    )
    from stressflow.inference.present.model_options import spec_from_args
    from stressflow.inference.schema import save_fit

    if (args.dataset is None) == (args.file is None):
        print("stressflow fit: give exactly one of --dataset NAME or --file PATH", file=sys.stderr)
        return 2
    from stressflow.data.panel import PANELS

    if args.dataset in PANELS:
        return _fit_panel_dataset(args)
    panel_only = [f"--{n}" for n in ("assets", "coupling") if getattr(args, n) is not None]
    if panel_only:
        print(f"stressflow fit: {', '.join(panel_only)} appl(ies) to a panel dataset "
              f"({', '.join(PANELS)}) only", file=sys.stderr)
        return 2
    source = args.dataset if args.dataset is not None else args.file
    if args.dataset is not None and args.dataset not in list_datasets().index:
        names = ", ".join(list_datasets().index)
        print(f"stressflow fit: unknown dataset {args.dataset!r}; bundled: {names}",
              file=sys.stderr)
        return 2
    try:
        spec = spec_from_args(args)
        columns = columns_from_args(args)
    except ValueError as exc:
        print(f"stressflow fit: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            result = fit(
                source, start=args.start, end=args.end, spec=spec, chains=args.chains,
                draws=args.draws, tune=args.tune, seed=args.seed,
                progress_bar=show_progress(args), spread_column=args.spread_column,
                volume_dropouts=args.volume_dropouts,
                covariate_data=read_covariate_file(args.covariate_file),
                store_draws=args.store_draws, pointwise_loglik=args.pointwise_loglik,
                columns=columns, date_column=args.date_column,
            )
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"stressflow fit: {data_message(str(exc))}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    result.attrs["source"] = str(source)
    out = Path(args.out)
    try:
        save_fit(result, out)
    except OSError as exc:
        print(f"stressflow fit: cannot write {out}: {exc}", file=sys.stderr)
        return 1
    print(summary(result))
    print(f"\nwrote {out} ({out.stat().st_size / 1e6:.1f} MB); wall time {wall:.1f} s")
    return 0


#: Options of ``fit`` that describe a one-asset model: (dest, default); a panel dataset
#: refuses any that is set.
_SINGLE_ONLY = (("model", "default"), ("emission", None), ("transitions", None),
                ("discretionary", None), ("compulsion_feature", None), ("observables", None),
                ("stage_durations", None), ("transition_covariates", None),
                ("transition_model", None), ("spread_column", None), ("volume_dropouts", None),
                ("file", None), ("covariate_file", None), ("columns", None),
                ("date_column", "date"))


def _fit_panel_dataset(args) -> int:
    """``stressflow fit --dataset us_markets``: the panel fit of
    :func:`stressflow.inference.present.cli_panel.run_panel_fit`."""
    from stressflow.inference.present.cli_panel import run_panel_fit

    set_single = [f"--{d.replace('_', '-')}" for d, default in _SINGLE_ONLY
                  if getattr(args, d, default) != default]
    if set_single:
        print(f"stressflow fit: {', '.join(set_single)} describe(s) a one-asset model; the "
              f"panel dataset {args.dataset!r} takes --assets, --coupling and --stages",
              file=sys.stderr)
        return 2
    args.panel = args.dataset
    return run_panel_fit(args, "stressflow fit")


def _cmd_summary(args) -> int:
    from stressflow.inference.postprocess.summaries import summary
    from stressflow.inference.schema import is_panel, load_fit

    try:
        result = load_fit(args.file)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"stressflow summary: {exc}", file=sys.stderr)
        return 1
    if is_panel(result):
        from stressflow.inference.postprocess.panel_summary import panel_summary

        print(panel_summary(result))
    else:
        print(summary(result, n_top=args.top))
    return 0


#: The bundled window ``warmup`` fits: short (the compiled code does not depend on the data's
#: length), with every default observable defined (the bond yield included).
_WARMUP_WINDOW = ("2016-01-01", "2018-12-31")


def _cmd_warmup(args) -> int:
    """Compile what a machine's first fit compiles (numba's kernels, PyTensor's functions and
    the model's log density, all cached on disk) by fitting the model the options describe to
    a short bundled window, 1 chain x 5 draws; nothing is written but the caches."""
    from stressflow.inference.fitting.compile_cache import cache_dir
    from stressflow.inference.fitting.fit import fit
    from stressflow.inference.present.model_options import spec_from_args

    t0 = time.perf_counter()
    try:  # options that describe no model, or a model the bundled data cannot feed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 5 draws of one chain fail every convergence check
            result = fit("sp500", start=_WARMUP_WINDOW[0], end=_WARMUP_WINDOW[1],
                         spec=spec_from_args(args), chains=1, draws=5, tune=5, seed=0,
                         progress_bar=False)
    except ValueError as exc:
        print(f"stressflow warmup: {exc}", file=sys.stderr)
        return 2
    import json

    timings = json.loads(result.attrs["timings"])
    print(f"stressflow warmup: compiled in {time.perf_counter() - t0:.1f} s (the model's log "
          f"density {timings['compile']:.1f} s; cache {cache_dir()})")
    return 0


def _cmd_datasets(args) -> int:
    from stressflow.data import list_datasets

    print(list_datasets().to_string())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from stressflow.inference.present.cli_panel import add_panel_options
    from stressflow.inference.present.console import add_column_options
    from stressflow.inference.present.model_options import add_model_options

    parser = argparse.ArgumentParser(
        prog="stressflow", description="Bayesian HMM of market stress stages."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit the stage model and write it to netCDF")
    p.add_argument("--dataset", help="bundled dataset name (see `stressflow datasets`), or a "
                                     "bundled panel of several markets (us_markets)")
    p.add_argument("--file", help="CSV or Parquet file with date, high, low, close, volume")
    add_column_options(p)
    p.add_argument("--start", help="first date of the fit window (YYYY-MM-DD)")
    p.add_argument("--end", help="last date of the fit window (YYYY-MM-DD)")
    p.add_argument("--spread-column", help="column to use as the spread observable")
    p.add_argument("--covariate-file", metavar="PATH",
                   help="CSV/Parquet with a date column and source series: "
                        "bond_yield_10y_pct (the 10-year yield, %%, for bond_vol_surprise; "
                        "default: the bundled US Treasury, which ends 2018-12-31; a FRED "
                        "DGS10 download is read as is) or a "
                        "transition covariate's column")
    p.add_argument("--volume-dropouts", choices=VOLUME_DROPOUT_MODES,
                   help=f"early closes and bad volume rows (volume > {DROPOUT_SD:g} robust sd "
                        "below its trailing median): keep them (default) or mask their volume "
                        "and impact")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    add_model_options(p)
    add_panel_options(p, stages=False)
    p.add_argument("--store-draws", action="store_true",
                   help="also store per-draw stage probabilities (large)")
    p.add_argument("--no-pointwise-loglik", dest="pointwise_loglik", action="store_false",
                   help="do not store the log_likelihood group (chain x draw x day, for LOO; "
                        "stored by default, as by fit())")
    p.add_argument("--progress", action="store_true",
                   help="show the sampler's progress bar even when not on a terminal")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (shown by default when stderr is a terminal)")
    p.add_argument("--out", default="stressflow_fit.nc", help="output netCDF file")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("summary", help="print the summary of a saved fit")
    p.add_argument("file")
    p.add_argument("--top", type=int, default=10, help="how many top forced-flow days to list")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("datasets", help="list the bundled datasets")
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser("warmup", help="compile the model once per machine (run by .ci/setup), "
                                      "so that the first fit loads the compiled code")
    add_model_options(p)
    p.set_defaults(func=_cmd_warmup)

    from stressflow.inference.present.cli_evaluate import register_cli as register_evaluate
    from stressflow.inference.present.cli_many import register_cli as register_many
    from stressflow.inference.present.cli_panel import register_cli as register_panel
    from stressflow.inference.present.cli_ppc import register_cli as register_ppc
    from stressflow.inference.present.commands import (
        register_compare,
        register_episodes,
        register_feed,
        register_plot,
    )

    register_episodes(sub)
    register_plot(sub)
    register_feed(sub)
    register_evaluate(sub)
    register_compare(sub)
    register_many(sub)
    register_panel(sub)
    register_ppc(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = getattr(args, "out", None)
    problem = output_problem(out) if out else None
    if problem:  # before the work: a long fit is not lost to a mistyped --out
        print(f"stressflow {args.command}: cannot write --out {out}: {problem}", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
