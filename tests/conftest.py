"""Shared pytest helpers for the stressflow test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

try:  # the panel fit shared by the panel tests, the feed's fit (one fit each per session)
    from tests.feed_fixtures import prices, real_fit, updated  # noqa: F401
    from tests.panel_fixtures import pair_fit, pair_fit_path, pair_panel  # noqa: F401
except ImportError:  # pytest's rootdir-less "prepend" import
    from feed_fixtures import prices, real_fit, updated  # noqa: F401
    from panel_fixtures import pair_fit, pair_fit_path, pair_panel  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Folder of shared, non-bundled test series (``$STRESSFLOW_SHARED_DATA`` overrides).

    Default: ``../shared/data`` next to the repository root. It holds series that must not be
    bundled with the package (e.g. the ICE BofA OAS credit spreads, ICE terms of use).
    """
    override = os.environ.get("STRESSFLOW_SHARED_DATA")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (see :func:`shared_data_dir`); skips the test if absent."""
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} absent (set STRESSFLOW_SHARED_DATA)")
    return folder


@pytest.fixture(scope="session")
def load_shared_series():
    """Loader ``load(name) -> DataFrame`` for a shared series; skips the test if absent.

    ``name`` is a file name or its prefix, e.g. ``"us_hy_oas"`` for
    ``us_hy_oas_daily_1996_2018.csv``. The frame is indexed by a DatetimeIndex ``"date"``.
    """

    def load(name: str) -> pd.DataFrame:
        folder = shared_data_dir()
        matches = sorted(folder.glob(name if name.endswith(".csv") else f"{name}*.csv"))
        if not matches:
            pytest.skip(
                f"shared series {name!r} not found in {folder} (not bundled for licence "
                "reasons; set STRESSFLOW_SHARED_DATA to the folder holding it)"
            )
        return pd.read_csv(matches[0], index_col="date", parse_dates=["date"])

    return load


# --------------------------------------------------------------------------------------------
# Simulated stage data for the model / fit tests (appended; the fixtures above are unchanged)
# --------------------------------------------------------------------------------------------

#: True stage means of the simulated observables (rows: stages, columns: FEATURES); the
#: ``volatility`` column increases across stages, as the model's identification requires.
SIM_MU = (
    (-1.0, -1.8, 0.8, -0.6),
    (0.6, -0.6, -0.9, 0.4),
    (-0.8, 0.6, -0.2, 1.4),
    (1.6, 1.8, 1.2, -0.4),
)
#: True stage standard deviations (about 0.5).
SIM_SIGMA = (
    (0.50, 0.45, 0.55, 0.50),
    (0.40, 0.50, 0.50, 0.60),
    (0.55, 0.50, 0.45, 0.50),
    (0.50, 0.60, 0.50, 0.45),
)
#: True sticky transition matrix, P[i, j] = Pr(stage_t = j | stage_{t-1} = i).
SIM_P = (
    (0.97, 0.01, 0.01, 0.01),
    (0.01, 0.97, 0.01, 0.01),
    (0.01, 0.01, 0.97, 0.01),
    (0.01, 0.01, 0.01, 0.97),
)


def simulate_stage_hmm(n_days, seed, *, mu=SIM_MU, sigma=SIM_SIGMA, trans=SIM_P, n_missing=10,
                       start="2001-01-01"):
    """Simulate a Gaussian stage HMM on business days.

    Returns ``(features, path)``: a DataFrame (index ``time`` of business days, columns
    :data:`stressflow.models.dims.FEATURES`, ``n_missing`` randomly placed NaN cells) and the
    true stage index of each day (int array, starting from a uniform initial stage).
    """
    import numpy as np
    from stressflow.models import dims

    rng = np.random.default_rng(seed)
    mu, sigma, trans = np.asarray(mu), np.asarray(sigma), np.asarray(trans)
    n_stages, n_feat = mu.shape
    path = np.empty(n_days, dtype=np.int64)
    path[0] = rng.integers(n_stages)
    for t in range(1, n_days):
        path[t] = rng.choice(n_stages, p=trans[path[t - 1]])
    y = mu[path] + sigma[path] * rng.standard_normal((n_days, n_feat))
    if n_missing:
        cells = rng.choice(n_days * n_feat, size=n_missing, replace=False)
        y.ravel()[cells] = np.nan
    index = pd.bdate_range(start, periods=n_days, name=dims.TIME)
    columns = pd.Index(list(dims.FEATURES[:n_feat]), name=dims.FEATURE)
    return pd.DataFrame(y, index=index, columns=columns), path


def make_prepared(features):
    """Wrap already standardised observables as a :class:`stressflow.data.PreparedData`.

    The transform is the identity (centre 0, scale 1), so ``raw == features`` and the model
    sees exactly the given values; ``prices`` holds a synthetic positive ``close`` series.
    """
    import numpy as np
    from stressflow.data import DataReport, FeatureTransform, PreparedData

    names = tuple(str(c) for c in features.columns)
    transform = FeatureTransform(
        features=names, center=(0.0,) * len(names), scale=(1.0,) * len(names)
    )
    index = features.index
    close = 100.0 * np.exp(np.cumsum(np.full(len(index), 1e-4)))
    prices = pd.DataFrame({"close": close}, index=pd.DatetimeIndex(index, name="date"))
    report = DataReport(
        start=index[0],
        end=index[-1],
        n_rows=len(index),
        spread_source="simulated",
        n_missing={c: int(features[c].isna().sum()) for c in names},
    )
    return PreparedData(
        features=features.copy(), raw=features.copy(), prices=prices, transform=transform,
        report=report,
    )


@pytest.fixture(scope="session")
def simulated_hmm():
    """``(PreparedData, true_path)`` of a 1500-day, 4-stage, 4-feature sticky Gaussian HMM
    with the true parameters :data:`SIM_MU`, :data:`SIM_SIGMA`, :data:`SIM_P`."""
    features, path = simulate_stage_hmm(1500, seed=20240611, n_missing=12)
    return make_prepared(features), path


@pytest.fixture(scope="session")
def small_simulated():
    """A 300-day PreparedData from the same model (for quick fits)."""
    features, _ = simulate_stage_hmm(300, seed=7, n_missing=4)
    return make_prepared(features)


def draw_terms(features, params, spec=None):
    """``terms(lo, hi)`` of the posterior layer (kernel inputs of draws lo..hi-1) for parameter
    draws ``params`` (name -> array with a leading draw axis) on ``features`` (T, D), through
    the model's one evaluator."""
    from stressflow.models.evaluate import evaluate_draws, model_data
    from stressflow.models.spec import ModelSpec

    spec = spec or ModelSpec.base()
    data = model_data(spec, features)
    return lambda lo, hi: evaluate_draws(spec, params, data, lo, hi)
