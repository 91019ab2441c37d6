"""Shared pytest helpers for the stressflow test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

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
