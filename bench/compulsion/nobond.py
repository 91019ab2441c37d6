"""What the default model gives when the 10-year yield stops: ``bond_vol_surprise`` missing.

The bundled Treasury series ends 2018-12-31, so a user who fits or updates on later prices
without passing the yield (``covariate_data`` / ``--covariate-file``) gets the default model
with its bond observable missing on the new days (warned; the emission marginalises it out).
This script measures what that costs on the bundled catalogue, by masking the bond observable
from a date on and rescoring the default (``k5_bond_gated``) with the harness's EM point
estimate, 32 k-means seeds:

- out of time (fit to 2006-12-31, filter to 2018): the bond observable present, missing from
  2007 (a user whose yield ends at the fit's cut) and missing from 2016 (the 2016 scare and
  Q4 2018 scored without it);
- in sample (fit 1985-2018): the bond observable missing from 2016 on.

Run (repository root): ``.venv/bin/python -m bench.compulsion.nobond``; writes
``bench/results/compulsion_nobond.md``. Labels are read only to score, as in :mod:`.scores`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import scores
from .features import raw_observables
from .report import markdown_table
from .variants import VARIANTS

RESULTS = Path(__file__).resolve().parents[1] / "results"
VARIANT = "k5_bond_gated"
#: (label, first date without the bond observable or None, scope)
CASES = (
    ("present", None), ("missing from 2007-01-01", "2007-01-01"),
    ("missing from 2016-01-01", "2016-01-01"),
)
OOT_EPISODES = ("Quant quake 2007", "Lehman / GFC 2008", "Oil / China growth scare 2016",
                "Q4 2018 selloff")


def masked(raw: pd.DataFrame, start: str | None) -> pd.DataFrame:
    """A copy of ``raw`` with ``bond_vol_surprise`` missing on ``start`` and after."""
    out = raw.copy()
    if start is not None:
        out.loc[out.index >= pd.Timestamp(start), "bond_vol_surprise"] = np.nan
    return out


def _pick(eps: pd.DataFrame, name: str, col: str) -> float:
    hit = eps.loc[eps["episode"] == name, col]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")  # DataWarnings of prepare() on the bundled files
    scores.SEEDS = tuple(range(32))
    variant = {v.name: v for v in VARIANTS}[VARIANT]
    raw = raw_observables("sp500")
    oot_rows, in_rows = [], []
    with threadpool_limits(limits=1):
        for label, start in CASES:
            summ, eps = scores.out_of_time(masked(raw, start), variant.columns, variant.design)
            oot_rows.append([label, *(_pick(eps, e, "p_filtered") for e in OOT_EPISODES),
                             summ["oot_brier"], summ["oot_ff_share"]])
            print("out of time", oot_rows[-1], flush=True)
        for label, start in (CASES[0], CASES[2]):
            summ, eps, _ = scores.in_sample(masked(raw, start), variant.columns, variant.design)
            d = eps.loc[eps["expected"] == "D"]
            in_rows.append([label, _pick(eps, "Oil / China growth scare 2016", "p_compulsion"),
                            _pick(eps, "Q4 2018 selloff", "p_compulsion"),
                            float(d["p_compulsion"].max()), summ["auc"], summ["ff_share"]])
            print("in sample", in_rows[-1], flush=True)
    lines = [
        "# The default without its bond observable after a date",
        "",
        f"Variant `{VARIANT}` (the default), EM point estimate from 32 k-means seeds; the "
        "10-year yield's `bond_vol_surprise` masked from the date given (what a fit or update "
        "on prices after 2018 gets when the yield is not passed). Command: "
        "`.venv/bin/python -m bench.compulsion.nobond`.",
        "",
        "## Out of time (fit to 2006-12-31, filtered to 2018; p_filtered)",
        "",
        *markdown_table(("bond_vol_surprise", "Quant quake", "Lehman", "2016 scare", "Q4 2018",
                         "Brier", "ff share after the cut"), oot_rows),
        "",
        "## In sample (fit 1985-2018; p_compulsion)",
        "",
        *markdown_table(("bond_vol_surprise", "2016 scare", "Q4 2018", "worst D", "AUC",
                         "ff share"), in_rows),
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compulsion_nobond.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
