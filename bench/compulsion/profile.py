"""Episode profiles: the mean of each standardised observable over each catalogue episode.

Run: ``.venv/bin/python -m bench.compulsion.profile [observable ...]`` (from the repository
root). Standardised on the out-of-time fitting window (1985-2006), as the out-of-time scores
are; prints one column per S&P 500 catalogue episode (``label name``). Used to ask whether an
observable can separate the forced episodes from the discretionary controls at all, before any
model is fitted; the labels are only read to pick the days.
"""

from __future__ import annotations

import sys
import warnings

import pandas as pd

from .features import raw_observables, standardise
from .scores import CUT, IN_SAMPLE, load_labels

DEFAULT = ("spread", "volatility", "vol_surprise", "volume", "impact", "hy_abs5", "baa_abs5",
           "ted_abs5", "stock_bond")


def profile(columns=DEFAULT) -> pd.DataFrame:
    """(observable x episode) means of the observables standardised on 1985 .. CUT."""
    raw = raw_observables("sp500")
    z, _ = standardise(raw, list(columns), IN_SAMPLE[0], CUT)
    eps = load_labels("sp500")
    eps = eps[eps["expected"].isin(("F-", "F+", "D", "M"))]
    return pd.DataFrame({f"{e.expected} {e.episode}": z.loc[e.start:e.end].mean()
                         for e in eps.itertuples()}).round(2)


def main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")  # DataWarnings of prepare() on the bundled files
    print(profile(tuple(argv) or DEFAULT).T.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
