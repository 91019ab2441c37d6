"""The real-data panel fit shared by the panel tests: S&P 500 + TED, 2006-01-01..2009-06-30,
fitted once per test session from the command line (``stressflow fit --dataset us_markets``)."""

from __future__ import annotations

import warnings

import pytest

#: Sampler settings of the shared fit (short: the tests check structure, reproducibility and
#: exact post-processing identities, not convergence).
PAIR_FIT = dict(chains=2, draws=150, tune=200, seed=3)
PAIR_ASSETS = ("sp500", "ted")
PAIR_WINDOW = ("2006-01-01", "2009-06-30")


@pytest.fixture(scope="session")
def pair_panel():
    from stressflow.data.panel import PANELS, prepare_panel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_panel({n: PANELS["us_markets"][n] for n in PAIR_ASSETS},
                             start=PAIR_WINDOW[0], end=PAIR_WINDOW[1])


@pytest.fixture(scope="session")
def pair_fit_path(tmp_path_factory):
    """The S&P 500 + TED 2006-2009 panel fitted from the command line."""
    from stressflow.inference.present.cli import main

    path = tmp_path_factory.mktemp("panel") / "pair.nc"
    argv = ["fit", "--dataset", "us_markets", "--assets", *PAIR_ASSETS, "--start",
            PAIR_WINDOW[0], "--end", PAIR_WINDOW[1], "--out", str(path), "--quiet"]
    for key, value in PAIR_FIT.items():
        argv += [f"--{key}", str(value)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    return path


@pytest.fixture(scope="session")
def pair_fit(pair_fit_path):
    from stressflow.inference.schema import load_fit

    return load_fit(pair_fit_path)
