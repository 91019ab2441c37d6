"""How the command line talks to a person: one-line warnings and the progress-bar choice."""

from __future__ import annotations

import sys

__all__ = ["show_warning", "show_progress"]


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Print a warning as one line ``warning (Category): message`` (no source line)."""
    print(f"warning ({category.__name__}): {message}", file=sys.stderr)


def show_progress(args) -> bool:
    """Progress bar: on with ``--progress``, off with ``--quiet``, else on a terminal only."""
    if getattr(args, "quiet", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def read_covariate_file(path: str | None):
    """The ``--covariate-file`` of ``fit`` and ``update``: a CSV or Parquet file with a ``date``
    column and source columns (``bond_yield_10y_pct`` for ``bond_vol_surprise``, or a
    transition covariate's column), as ``covariate_data`` for :func:`stressflow.data.prepare`;
    None without a path. A FRED download of DGS10 is read as is
    (:func:`stressflow.data.covariate_join.read_covariate_data`). Raises FileNotFoundError for
    a missing file."""
    if path is None:
        return None
    from pathlib import Path

    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"covariate file {path} not found")
    return pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)

