"""``stressflow panel``: fit several markets' stages jointly and read how stress migrated.

``stressflow panel fit us_markets --out us.nc`` fits the bundled US panel
(:func:`stressflow.inference.fitting.panel_fit.fit_panel`) and writes it with
:func:`stressflow.inference.schema.save_fit`; ``stressflow panel lead us.nc --window 2007-01-01
2008-12-31`` prints the spillover coefficients, the lead table and the migration probabilities
(:mod:`stressflow.inference.apps.migration`).
"""

from __future__ import annotations

import sys
import time

__all__ = ["register_cli", "add_panel_options", "run_panel_fit"]


def run_panel_fit(args, prog: str) -> int:
    """Fit a bundled panel from parsed arguments (``panel``, ``assets``, ``start``, ``end``,
    ``coupling``, ``stages``, ``chains``, ``draws``, ``tune``, ``seed``, ``out``) and write it;
    shared by ``stressflow fit --dataset us_markets`` and ``stressflow panel fit``."""
    from stressflow.data import DataError
    from stressflow.data.panel import PANELS, prepare_panel
    from stressflow.inference.fitting.panel_fit import fit_panel
    from stressflow.inference.postprocess.panel_summary import convergence, panel_summary
    from stressflow.inference.present.console import show_progress
    from stressflow.inference.schema import save_fit

    try:
        assets = args.panel
        if args.assets:
            known = PANELS.get(args.panel, {})
            unknown = [a for a in args.assets if a not in known]
            if unknown:
                raise ValueError(f"asset(s) {unknown} not in panel {args.panel!r} "
                                 f"(assets: {list(known)})")
            assets = {a: known[a] for a in args.assets}
            if args.start is None and args.end is None:
                from stressflow.data.panel import PANEL_WINDOWS

                args.start, args.end = PANEL_WINDOWS[args.panel]
        panel = prepare_panel(assets, start=args.start, end=args.end)
        t0 = time.perf_counter()
        fit = fit_panel(panel, chains=args.chains, draws=args.draws, tune=args.tune,
                        seed=args.seed, coupling=args.coupling or "spillover",
                        n_stages=args.stages or 2, progress_bar=show_progress(args),
                        store_draws=getattr(args, "store_draws", False))
        wall = time.perf_counter() - t0
    except (DataError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    fit.attrs["source"] = args.panel
    try:
        save_fit(fit, args.out)
    except OSError as exc:
        print(f"{prog}: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    print(panel_summary(fit))
    print(f"\nwrote {args.out}; wall time {wall:.1f} s")
    if convergence(fit)["max_rhat"] > 1.01:
        print("warning: max R-hat > 1.01, the chains have not converged", file=sys.stderr)
    return 0


def _cmd_fit(args) -> int:
    return run_panel_fit(args, "stressflow panel fit")


def _cmd_lead(args) -> int:
    from stressflow.inference.apps.migration import lead_table, migration_table, sample_asset_paths
    from stressflow.inference.schema import load_fit

    try:
        fit = load_fit(args.file)
        paths = sample_asset_paths(fit, n_draws=args.draws, paths_per_draw=args.paths,
                                   seed=args.seed)
        window = tuple(args.window)
        leads = lead_table(paths, *window, min_run=args.min_run)
        moves = migration_table(paths, *window, horizons=tuple(args.horizon))
    except (ValueError, FileNotFoundError) as exc:
        print(f"stressflow panel lead: {exc}", file=sys.stderr)
        return 1
    spill = fit["posterior"]["spillover"] if "spillover" in fit["posterior"] else None
    if spill is not None:
        print("spillover (median [5%, 95%]), rows: to, columns: from")
        print(spill.quantile([0.05, 0.5, 0.95], ("chain", "draw")).to_dataframe()["spillover"]
              .unstack("quantile").round(2).to_string())
    print(f"\nlead table {window[0]}..{window[1]}")
    print(leads.round({c: 3 for c in leads.select_dtypes("number").columns}).to_string())
    print("\nmigration probabilities")
    print(moves.round(3).to_string())
    return 0


def add_panel_options(p, stages: bool = True) -> None:
    """``--assets``, ``--coupling`` and (``stages``) ``--stages``: the panel options of
    ``panel fit``; ``fit`` has its own ``--stages``."""
    p.add_argument("--assets", nargs="+", metavar="ASSET",
                   help="fit only these assets of the bundled panel (default: all)")
    p.add_argument("--coupling", choices=["spillover", "none", "shared"],
                   help="panel fits: how the assets' stages interact (default spillover)")
    if stages:
        p.add_argument("--stages", type=int, help="stages per asset (default 2)")


def register_cli(sub) -> None:
    """Add ``panel fit`` and ``panel lead`` to the ``stressflow`` parser's subcommands."""
    p = sub.add_parser("panel", help="fit several markets jointly; read stress migration")
    psub = p.add_subparsers(dest="panel_command", required=True)
    f = psub.add_parser("fit", help="fit a panel and write it to netCDF")
    f.add_argument("panel", help="a bundled panel name (us_markets)")
    f.add_argument("--out", required=True)
    f.add_argument("--start")
    f.add_argument("--end")
    add_panel_options(f)
    f.add_argument("--chains", type=int, default=4)
    f.add_argument("--draws", type=int, default=1000)
    f.add_argument("--tune", type=int, default=1000)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--progress", action="store_true",
                   help="show the sampler's progress bar even when not on a terminal")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=_cmd_fit)
    lead = psub.add_parser("lead", help="spillover, lead table and migration of a panel fit")
    lead.add_argument("file")
    lead.add_argument("--window", nargs=2, default=["2007-01-01", "2008-12-31"],
                      metavar=("START", "END"))
    lead.add_argument("--horizon", type=int, nargs="+", default=[5, 20])
    lead.add_argument("--min-run", type=int, default=5)
    lead.add_argument("--draws", type=int, default=200)
    lead.add_argument("--paths", type=int, default=5)
    lead.add_argument("--seed", type=int, default=0)
    lead.set_defaults(func=_cmd_lead)
