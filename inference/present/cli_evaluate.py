"""``stressflow evaluate``: fit, then score the crisis catalogue in sample and out of time.

The work is :func:`stressflow.inference.apps.evaluation.run_evaluation`; this module only
parses the options, prints the Markdown report and writes it to ``--out``.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["register_cli"]


def _cmd_evaluate(args) -> int:
    from stressflow.data import DataError
    from stressflow.inference.apps.evaluation import run_evaluation
    from stressflow.inference.present.console import write_text
    from stressflow.inference.present.model_options import spec_from_args

    try:
        result = run_evaluation(spec=spec_from_args(args), cut=args.cut, start=args.start,
                                end=args.end, vw=args.vw, chains=args.chains,
                                draws=args.draws, tune=args.tune, seed=args.seed,
                                progress=not args.quiet)
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"stressflow evaluate: {exc}", file=sys.stderr)
        return 1
    text = result.to_markdown()
    print(text)
    if args.out:
        out = Path(args.out)
        write_text(text, out)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _vw_window(text: str):
    if text.lower() == "none":
        return None
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--vw must be START:END or none, got {text!r}")
    return tuple(parts)


def register_cli(subparsers) -> None:
    """Add ``stressflow evaluate [--cut DATE] [--start] [--end] [--vw START:END|none]
    [model options] [--chains] [--draws] [--tune] [--seed] [--out results.md] [--quiet]``."""
    from stressflow.inference.apps.evaluation import VW_WINDOW
    from stressflow.inference.present.model_options import add_model_options

    p = subparsers.add_parser(
        "evaluate",
        help="fit S&P 500 and VW, score the crisis catalogue in sample and out of time",
        description="Fits the S&P 500 (start..end) and VW in sample and the S&P 500 up to the "
                    "cut, extended past it by feed.update without refitting; then scores every "
                    "catalogued episode (labels are read only after fitting) and prints every "
                    "table, figure and metric as Markdown.",
    )
    p.add_argument("--cut", default="2006-12-31",
                   help="last date of the out-of-time fit (default 2006-12-31)")
    p.add_argument("--start", default="1985-01-01", help="first date of the S&P 500 fits")
    p.add_argument("--end", default="2018-12-31", help="last date of the S&P 500 data used")
    p.add_argument("--vw", type=_vw_window, default=VW_WINDOW,
                   help="VW fit window START:END, or none (default: the whole bundled series, "
                        f"{VW_WINDOW[0]}:{VW_WINDOW[1]})")
    add_model_options(p)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the Markdown report to this file")
    p.add_argument("--quiet", action="store_true",
                   help="no progress messages or sampler progress bar (the report is printed)")
    p.set_defaults(func=_cmd_evaluate)
