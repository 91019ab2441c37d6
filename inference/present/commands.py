"""Command-line handlers of the result commands: ``episodes``, ``plot``, ``update``, ``export``,
``compare``.

Each ``register_*`` adds its subcommand to the parser of :mod:`stressflow.inference.present.cli`;
the handlers print a message and return 1 on a user error instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from stressflow.data import DataError
from stressflow.inference.apps.episodes import episodes
from stressflow.inference.apps.feed import FEED_SCHEMA_VERSION, export, feed, update
from stressflow.inference.present.console import add_column_options, write_table
from stressflow.inference.present.plots import (
    _KINDS,
    plot_observables,
    plot_overview,
    plot_transitions,
    save_figure,
)

__all__ = ["register_episodes", "register_plot", "register_feed", "register_compare",
           "add_score_options"]

_SHOW = ["direction", "start", "extreme", "end", "move", "n_days", "volume_rel", "impact_rel",
         "p_compulsion", "p_compulsion_q05", "p_compulsion_q95", "p_margin_pressure_or_worse",
         "p_margin_lead_in", "label"]


def _format(table: pd.DataFrame, columns: Sequence[str]) -> str:
    show = table[[c for c in columns if c in table.columns]].copy()
    for col in ("start", "extreme", "end"):
        if col in show:
            show[col] = pd.to_datetime(show[col]).dt.strftime("%Y-%m-%d")
    with pd.option_context("display.width", 250, "display.max_columns", 40,
                           "display.max_rows", 500):
        return show.round(3).to_string()


def add_score_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the ``episodes`` subcommand and the catalogue scoring."""
    p.add_argument("--seed", type=int, default=0, help="seed of the path sampling")
    p.add_argument("--n-draws", type=int, default=200, help="posterior draws used (thinned)")
    p.add_argument("--paths-per-draw", type=int, default=10, help="FFBS paths per draw")
    p.add_argument("--min-share", type=float, default=0.5,
                   help="share of the episode's days that must be in the stage")
    p.add_argument("--lead-in", type=int, default=5, help="days searched for margin pressure")
    p.add_argument("--hi", type=float, default=0.7, help="p_compulsion for a forced label")
    p.add_argument("--lo", type=float, default=0.3,
                   help="p_compulsion at or below which the label is discretionary")


def _cmd_episodes(args) -> int:
    from stressflow.inference.apps.catalogue import score_catalogue
    from stressflow.inference.postprocess.paths import sample_stage_paths
    from stressflow.inference.schema import is_panel, load_fit

    try:
        fit = load_fit(args.file)
        if is_panel(fit):
            return _panel_episodes(fit, args)
        paths = sample_stage_paths(fit, n_draws=args.n_draws, paths_per_draw=args.paths_per_draw,
                                   seed=args.seed)
        table = episodes(fit, drawdown=args.drawdown, runup=args.runup, min_share=args.min_share,
                         lead_in=args.lead_in, hi=args.hi, lo=args.lo, paths=paths)
    except (FileNotFoundError, ValueError, TypeError, OSError) as exc:
        print(f"stressflow episodes: {exc}", file=sys.stderr)
        return 1
    print(f"Episodes of {args.file} (drawdown {args.drawdown:.0%}, run-up {args.runup:.0%}); "
          f"p_compulsion = Pr(>= {args.min_share:.0%} of the episode's days in forced_flow "
          "| y_1..y_T)")
    print(_format(table, _SHOW) if len(table) else "(no episode beyond the thresholds)")
    if args.out:
        write_table(table, args.out)
        print(f"\nwrote {args.out}")
    try:
        cat = score_catalogue(fit, market=args.market, min_share=args.min_share,
                              lead_in=args.lead_in, hi=args.hi, lo=args.lo, paths=paths)
    except ValueError as exc:
        print(f"\n(catalogue not scored: {exc})")
        return 0
    if len(cat):
        print("\nCatalogued episodes in range (expected labels are for evaluation only):")
        print(_format(cat, ["episode", "expected", "direction", "start", "end", "p_compulsion",
                            "p_compulsion_q05", "p_compulsion_q95", "label", "agree"]))
    else:
        print("\n(no catalogued episode of this market inside the fitted range)")
    return 0


def _panel_episodes(fit, args) -> int:
    """``stressflow episodes`` of a panel fit: per tape asset, its episodes and its catalogued
    ones (:mod:`stressflow.inference.apps.panel_assets`)."""
    from stressflow.inference.apps.migration import sample_asset_paths
    from stressflow.inference.apps.panel_assets import panel_catalogue, panel_episodes

    paths = sample_asset_paths(fit, n_draws=args.n_draws, paths_per_draw=args.paths_per_draw,
                               seed=args.seed)
    options = dict(min_share=args.min_share, lead_in=args.lead_in, hi=args.hi, lo=args.lo,
                   paths=paths)
    table = panel_episodes(fit, drawdown=args.drawdown, runup=args.runup, **options)
    top = json.loads(fit.attrs["panel_spec"])
    print(f"Episodes of each price asset of {args.file} (drawdown {args.drawdown:.0%}, run-up "
          f"{args.runup:.0%}); p_compulsion = Pr(>= {args.min_share:.0%} of the episode's days "
          "in the asset's forced_flow stage | every asset's y_1..y_T)")
    if top.get("n_stages", 2) < 4:
        print("note: with fewer than four stages per asset forced_flow is the asset's upper "
              "stage, a stress regime; it does not tell compulsion from discretionary "
              "repricing (README, panel model)")
    print(_format(table, _SHOW) if len(table) else "(no episode beyond the thresholds)")
    if args.out:
        write_table(table, args.out)
        print(f"\nwrote {args.out}")
    cat = panel_catalogue(fit, **options)
    if len(cat):
        print("\nCatalogued episodes in range (expected labels are for evaluation only):")
        print(_format(cat, ["market", "expected", "direction", "start", "end", "p_compulsion",
                            "p_compulsion_q05", "p_compulsion_q95", "label", "agree"]))
    else:
        print("\n(no catalogued episode of these markets inside the fitted range)")
    return 0


def register_episodes(subparsers) -> None:
    """Add ``stressflow episodes FILE.nc [--out table.csv] [--seed N] [thresholds]``."""
    p = subparsers.add_parser(
        "episodes", help="selloffs and rallies of a saved fit, scored for compulsion"
    )
    p.add_argument("file", help="netCDF file written by `stressflow fit`")
    p.add_argument("--out", help="also write the episode table to this CSV file")
    p.add_argument("--drawdown", type=float, default=0.10, help="selloff threshold (0.10 = 10%%)")
    p.add_argument("--runup", type=float, default=0.10, help="rally threshold (0.10 = 10%%)")
    p.add_argument("--market", help="catalogue market of the fit's data (default: its source)")
    add_score_options(p)
    p.set_defaults(func=_cmd_episodes)


def _cmd_plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from stressflow.inference.schema import is_panel, load_fit

    try:
        fit = load_fit(args.file)
        if is_panel(fit):
            if args.kind != "overview":
                raise ValueError(f"--kind {args.kind} is for one-asset fits; a panel fit has "
                                 "the overview (stress by market)")
            from stressflow.inference.present.plots_panel import plot_panel

            fig = plot_panel(fit, window=args.window, seed=args.seed)
        elif args.kind == "overview":
            fig = plot_overview(fit, drawdown=args.drawdown, runup=args.runup, seed=args.seed,
                                n_draws=args.n_draws, paths_per_draw=args.paths_per_draw)
        elif args.kind == "observables":
            fig = plot_observables(fit)
        else:
            fig = plot_transitions(fit)
        out = save_figure(fig, args.out)
    except (FileNotFoundError, ValueError, OSError, ImportError) as exc:
        print(f"stressflow plot: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


def register_plot(subparsers) -> None:
    """Add ``stressflow plot FILE.nc --out fig.png [--kind overview|observables|transitions]``."""
    p = subparsers.add_parser("plot", help="draw a figure of a saved fit")
    p.add_argument("file", help="netCDF file written by `stressflow fit`")
    p.add_argument("--out", required=True, help="image file to write (e.g. fig.png)")
    p.add_argument("--kind", choices=_KINDS, default="overview",
                   help="overview: price, stage probabilities and episodes; observables: "
                        "their distributions by stage; transitions: the matrix P")
    p.add_argument("--drawdown", type=float, default=0.10, help="selloff threshold (overview)")
    p.add_argument("--runup", type=float, default=0.10, help="rally threshold (overview)")
    p.add_argument("--seed", type=int, default=0, help="seed of the path sampling (overview)")
    p.add_argument("--n-draws", type=int, default=200, help="posterior draws used (overview)")
    p.add_argument("--paths-per-draw", type=int, default=10, help="paths per draw (overview)")
    p.add_argument("--window", nargs=2, metavar=("START", "END"),
                   help="panel fits: draw this window only and mark each market's stress onset")
    p.set_defaults(func=_cmd_plot)


def _cmd_update(args) -> int:
    from stressflow.inference.present.console import (
        columns_from_args,
        data_message,
        read_covariate_file,
    )
    from stressflow.inference.present.console import show_warning as _show_warning
    from stressflow.inference.schema import is_panel, load_fit, save_fit

    if Path(args.out).expanduser().resolve() == Path(args.fit).expanduser().resolve():
        print(f"stressflow update: --out {args.out} is the input fit; write the updated fit to "
              "another file (the input is never overwritten)", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            fit = load_fit(args.fit)
            t0 = time.perf_counter()
            if is_panel(fit):
                return _update_panel(fit, args, t0)
            if args.end is not None:
                raise ValueError("--end is for panel fits; pass a one-asset fit's new rows only")
            result = update(fit, args.new, date_column=args.date_column,
                            columns=columns_from_args(args),
                            covariate_data=read_covariate_file(args.covariate_file),
                            check_seam=not args.no_seam_check)
            seconds = time.perf_counter() - t0
        out = save_fit(result, args.out)
    except (DataError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"stressflow update: {data_message(str(exc))}", file=sys.stderr)
        return 1
    last = json.loads(result.attrs["feed_last_update"])
    row = feed(result).iloc[-1]
    skipped = ""
    if last.get("repeated_days_checked") or last.get("earlier_rows_ignored"):
        skipped = (f"{last['repeated_days_checked']} stored day(s) in the file matched the fit's "
                   f"and were skipped, {last['earlier_rows_ignored']} earlier row(s) left out\n")
    print(
        f"added {last['n_days']} day(s) {last['first']} .. {last['last']} in {seconds:.2f} s "
        f"(no refit; parameters fitted to {result.attrs.get('start')} .. "
        f"{result.attrs.get('end')})\n{skipped}"
        f"last day {last['last']}: p_compulsion {row['p_compulsion']:.3f} "
        f"[{row['p_compulsion_q05']:.3f}, {row['p_compulsion_q95']:.3f}], p_margin_or_worse "
        f"{row['p_margin_or_worse']:.3f}\nwrote {out}"
    )
    return 0


def _cmd_export(args) -> int:
    from stressflow.inference.schema import is_panel, load_fit

    try:
        fit = load_fit(args.fit)
        out = export(fit, args.out, format=args.format)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"stressflow export: {exc}", file=sys.stderr)
        return 1
    rows = (f"{fit['stages'].sizes['time'] * fit['stages'].sizes['asset']} rows (date x asset)"
            if is_panel(fit) else f"{len(feed(fit))} rows")
    print(f"wrote {out} ({out.stat().st_size / 1e3:.1f} kB, {rows}, feed schema version "
          f"{FEED_SCHEMA_VERSION})")
    return 0


def _update_panel(fit, args, t0) -> int:
    """``stressflow update`` of a panel fit: the new days of a bundled panel (``args.new``)."""
    from stressflow.inference.apps.feed.panel_update import update_panel
    from stressflow.inference.apps.panel_assets import panel_feed
    from stressflow.inference.schema import save_fit

    if args.no_seam_check:
        raise ValueError("--no-seam-check is for one-asset fits: a panel's new data must "
                         "repeat the fitted days exactly")
    if args.columns or args.date_column != "date":
        raise ValueError("--columns and --date-column are for one-asset fits: a panel fit "
                         "reads the new days of its bundled panel")
    result = update_panel(fit, args.new, end=args.end)
    seconds = time.perf_counter() - t0
    out = save_fit(result, args.out)
    last = json.loads(result.attrs["feed_last_update"])
    rows = panel_feed(result)
    rows = rows[rows["date"] == rows["date"].max()]
    print(f"added {last['n_days']} day(s) {last['first']} .. {last['last']} in {seconds:.2f} s "
          f"(no refit; parameters fitted to {result.attrs.get('data_start')} .. "
          f"{result.attrs.get('data_end')})\nlast day {last['last']}, Pr(top stage | data to "
          "that day) per asset:")
    for r in rows.itertuples():
        print(f"  {r.asset:14s} {r.p_compulsion:.3f} [{r.p_compulsion_q05:.3f}, "
              f"{r.p_compulsion_q95:.3f}]")
    print(f"wrote {out}")
    return 0


def register_feed(subparsers) -> None:
    """Add ``stressflow update`` and ``stressflow export`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "update", help="extend a saved fit's filtered probabilities to new days (no refit)"
    )
    p.add_argument("fit", help="fit netCDF written by `stressflow fit` or an earlier update")
    p.add_argument("new", help="CSV/Parquet with the new rows (date, high, low, close, volume); "
                              "for a panel fit, the bundled panel whose series hold the new days "
                              "(us_markets)")
    p.add_argument("--end", help="panel fits: the last new day (default: the end of the data)")
    add_column_options(p)
    p.add_argument("--out", required=True,
                   help="output netCDF (must differ from the input, which is left unchanged)")
    p.add_argument("--no-seam-check", action="store_true",
                   help="accept new rows that do not look like a continuation of the fit's "
                        "series (price or volume level, calendar gap, another market)")
    p.add_argument("--covariate-file", metavar="PATH",
                   help="CSV/Parquet with a date column and the source series the fit took "
                        "from covariate_data (e.g. bond_yield_10y_pct), covering the new days "
                        "and the year before them")
    p.set_defaults(func=_cmd_update)

    p = subparsers.add_parser(
        "export", help=f"write the risk feed (schema version {FEED_SCHEMA_VERSION}) to a file"
    )
    p.add_argument("fit", help="fit netCDF")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")
    p.add_argument("--out", required=True, help="output file")
    p.set_defaults(func=_cmd_export)


def _cmd_compare(args) -> int:
    from stressflow.inference.apps.comparison import compare_fits
    from stressflow.inference.schema import load_fit

    try:
        names = [str(p) for p in args.files]
        if len(set(names)) != len(names):
            raise ValueError("the same file is given twice")
        table = compare_fits({name: load_fit(name) for name in names})
    except (FileNotFoundError, ValueError, TypeError, OSError) as exc:
        print(f"stressflow compare: {exc}", file=sys.stderr)
        return 1
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(2).to_string())
    print(f"\nnote: {table.attrs['caveat']}")
    if args.out:
        write_table(table, args.out)
        print(f"wrote {args.out}")
    return 0


def register_compare(subparsers) -> None:
    """Add ``stressflow compare FIT.nc FIT.nc [...] [--out table.csv]`` (PSIS-LOO)."""
    p = subparsers.add_parser(
        "compare", help="compare saved fits of the same data by PSIS-LOO (arviz-stats)")
    p.add_argument("files", nargs="+", help="fit netCDF files (same days and observables)")
    p.add_argument("--out", help="also write the table to this CSV file")
    p.set_defaults(func=_cmd_compare)
