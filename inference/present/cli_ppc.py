"""``stressflow ppc``: posterior predictive checks of a saved fit.

The work is :func:`stressflow.inference.postprocess.predictive.posterior_predictive` and
:func:`~stressflow.inference.postprocess.predictive.ppc_table`; this module parses the options,
prints the table and writes it to ``--out``.
"""

from __future__ import annotations

import sys

__all__ = ["register_cli"]

#: ppp at or below this, or at or above 1 minus it, is marked in the printed table.
FLAG = 0.025


def _cmd_ppc(args) -> int:
    from stressflow.inference.postprocess.predictive import posterior_predictive, ppc_table
    from stressflow.inference.present.console import write_table
    from stressflow.inference.schema import load_fit

    try:
        fit = load_fit(args.fit)
        table = ppc_table(posterior_predictive(fit, n_draws=args.draws, paths=args.paths,
                                               seed=args.seed))
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"stressflow ppc: {exc}", file=sys.stderr)
        return 1
    shown = table.drop(columns="paths").copy()
    shown["misfit"] = ((shown["ppp"] <= FLAG) | (shown["ppp"] >= 1 - FLAG)).map(
        {True: "*", False: ""})
    print(f"posterior predictive check of {args.fit}: {args.paths} paths, about {args.draws} "
          f"draws, seed {args.seed}; ppp = Pr(T(y_rep) >= T(y) | y), * where ppp <= {FLAG} or "
          f">= {1 - FLAG}")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        write_table(table, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def register_cli(subparsers) -> None:
    """Add ``stressflow ppc FIT [--paths transition|smoothed] [--draws N] [--seed S]
    [--out table.csv]``."""
    from stressflow.inference.postprocess.predictive import PATHS

    p = subparsers.add_parser(
        "ppc", help="posterior predictive checks of a saved fit",
        description="Replicates the observables from the fitted model under thinned posterior "
                    "draws and compares test quantities (mean, sd, 1% and 99% quantiles, "
                    "lag-1 autocorrelation, runs above the observed 95% quantile, the share "
                    "of days per stage) with the observed ones.",
    )
    p.add_argument("fit", help="fit netCDF written by `stressflow fit` (or an update)")
    p.add_argument("--paths", choices=PATHS, default="transition",
                   help="stage paths of the replicates: drawn forward from the fitted chain "
                        "(transition, the whole model) or from the smoothed posterior of the "
                        "stages (smoothed, the emissions given the stages)")
    p.add_argument("--draws", type=int, default=200, help="about this many posterior draws")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the table as CSV")
    p.set_defaults(func=_cmd_ppc)
