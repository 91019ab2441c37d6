"""``stressflow panel``: fit several markets' stages jointly and read how stress migrated.

``stressflow panel fit us_markets --out us.nc`` fits the bundled US panel
(:func:`stressflow.inference.fitting.panel_fit.fit_panel`) and writes it with
:func:`stressflow.inference.schema.save_fit`; ``stressflow panel lead us.nc --window 2007-01-01
2008-12-31`` prints the spillover coefficients, the lead table and the migration probabilities
(:mod:`stressflow.inference.apps.migration`).
"""

from __future__ import annotations

import sys

__all__ = ["register_cli"]


def _cmd_fit(args) -> int:
    import arviz as az
    from stressflow.data import DataError
    from stressflow.data.panel import prepare_panel
    from stressflow.inference.fitting.panel_fit import fit_panel
    from stressflow.inference.schema import save_fit

    try:
        panel = prepare_panel(args.panel, start=args.start, end=args.end)
        fit = fit_panel(panel, chains=args.chains, draws=args.draws, tune=args.tune,
                        seed=args.seed, coupling=args.coupling, n_stages=args.stages,
                        progress_bar=not args.quiet and sys.stderr.isatty())
    except (DataError, ValueError) as exc:
        print(f"stressflow panel fit: {exc}", file=sys.stderr)
        return 1
    rhat = az.rhat(fit["posterior"].to_dataset())
    worst = max(float(rhat[v].max()) for v in rhat.data_vars)
    print(f"{panel}\nmax R-hat {worst:.3f}; timings {fit.attrs['timings']}")
    if worst > 1.01:
        print("warning: max R-hat > 1.01, the chains have not converged", file=sys.stderr)
    save_fit(fit, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


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
    print(leads.round(3).to_string())
    print("\nmigration probabilities")
    print(moves.round(3).to_string())
    return 0


def register_cli(sub) -> None:
    """Add ``panel fit`` and ``panel lead`` to the ``stressflow`` parser's subcommands."""
    p = sub.add_parser("panel", help="fit several markets jointly; read stress migration")
    psub = p.add_subparsers(dest="panel_command", required=True)
    f = psub.add_parser("fit", help="fit a panel and write it to netCDF")
    f.add_argument("panel", help="a bundled panel name (us_markets)")
    f.add_argument("--out", required=True)
    f.add_argument("--start")
    f.add_argument("--end")
    f.add_argument("--coupling", default="spillover", choices=["spillover", "none", "shared"])
    f.add_argument("--stages", type=int, default=2, help="stages per asset")
    f.add_argument("--chains", type=int, default=4)
    f.add_argument("--draws", type=int, default=1000)
    f.add_argument("--tune", type=int, default=1000)
    f.add_argument("--seed", type=int, default=0)
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
