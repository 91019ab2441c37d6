"""How the command line talks to a person: one-line warnings, the progress-bar choice, and
the files it writes (checked before the work, written whole or not at all)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["show_warning", "show_progress", "output_problem", "write_table", "write_text",
           "add_column_options", "columns_from_args", "data_message"]


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

    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"covariate file {path} not found")
    return pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)


def add_column_options(parser) -> None:
    """``--date-column`` and ``--columns`` of the commands that read a price file (the
    ``date_column=`` and ``columns=`` of :func:`stressflow.data.read_prices`)."""
    parser.add_argument("--date-column", default="date",
                        help="name of the price file's date column (after --columns), e.g. Date")
    parser.add_argument("--columns", metavar="FROM=TO[,FROM=TO...]",
                        help="rename the price file's columns to stressflow's, e.g. "
                             "High=high,Low=low,Close=close,Volume=volume")


def columns_from_args(args) -> dict[str, str] | None:
    """The ``--columns`` mapping ``{"High": "high", ...}`` (None without the option); raises
    ValueError naming the entry that is not ``FROM=TO``."""
    text = getattr(args, "columns", None)
    if not text:
        return None
    mapping = {}
    for entry in text.split(","):
        source, sep, target = entry.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(f"--columns entry {entry!r} is not FROM=TO (e.g. Close=close)")
        mapping[source.strip()] = target.strip()
    return mapping


def data_message(text: str) -> str:
    """A message of :func:`stressflow.data.read_prices` with its advice in the command line's
    terms: ``date_column='Date'`` as ``--date-column Date``, ``columns={'High': 'high'}`` as
    ``--columns High=high``."""
    import ast
    import re
    import shlex

    def mapping(match: re.Match) -> str:
        try:
            pairs = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return match.group(0)
        return "--columns " + shlex.quote(",".join(f"{k}={v}" for k, v in pairs.items()))

    text = re.sub(r"\bcolumns=(\{[^}]*\})", mapping, text)
    text = re.sub(r"\bdate_column=(['\"])(.*?)\1",
                  lambda m: "--date-column " + shlex.quote(m.group(2)), text)
    text = re.sub(r"\bdate_column=(?=[\s),;]|$)", "--date-column", text)
    return re.sub(r"(?<![-\w])columns=(?=[\s),;]|$)", "--columns", text)


def output_problem(path: str | os.PathLike) -> str | None:
    """Why no file can be written at ``path`` (``None`` if one can;
    :func:`stressflow.inference.integrity.write_target`). Checked before a command's work, so
    that a fit of minutes is not lost to a mistyped ``--out``."""
    from stressflow.inference.integrity import write_target

    return write_target(path)[1]


def write_table(table, path: str | os.PathLike) -> None:
    """Write a DataFrame as CSV to ``path`` atomically: the old file or the whole new one,
    never a part (:func:`stressflow.inference.integrity.atomic_write`); compressed as the
    name says (``.csv.gz``, ``.csv.zip``, ...), as :meth:`pandas.DataFrame.to_csv` does."""
    from pandas.io.common import infer_compression
    from stressflow.inference.integrity import atomic_write

    with atomic_write(path) as tmp:
        table.to_csv(tmp, compression=infer_compression(str(path), "infer"))


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write UTF-8 text to ``path`` atomically, as :func:`write_table`."""
    from stressflow.inference.integrity import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
