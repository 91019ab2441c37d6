"""What :func:`~stressflow.data.prepare` did to the data, counted per treatment."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

__all__ = ["DataReport"]


def _iso(value: pd.Timestamp) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def _short(dates: tuple[pd.Timestamp, ...], limit: int = 5) -> str:
    text = ", ".join(_iso(d) for d in dates[:limit])
    return text + (f", ... (+{len(dates) - limit})" if len(dates) > limit else "")


@dataclass(frozen=True)
class DataReport:
    """Counts of every treatment applied by :func:`~stressflow.data.prepare`.

    All counts refer to rows of the requested window ``start..end`` (history before ``start``
    is used for trailing windows but not counted). A row can be counted under several
    treatments; ``n_missing`` is the resulting number of missing values per feature.

    Attributes
    ----------
    start, end : pandas.Timestamp
        First and last date of the window.
    n_rows : int
        Rows (dates) in the window; none are ever dropped.
    spread_source : str
        ``"abdi_ranaldo"`` or the name of the spread column used.
    n_missing : dict of str to int
        Missing (NaN) values per feature after all treatments.
    n_empty_cells : dict of str to int
        Empty (NaN) input cells per used input column (``high, low, close, volume``, the
        spread column and extra columns); only columns with at least one are listed.
    n_zero_volume, zero_volume_dates
        Rows with ``volume == 0`` (non-trading rows, e.g. exchange holidays): all observables
        missing that day.
    n_flat_range, flat_range_dates
        Trading rows with ``high == low`` (close-only records): spread and volatility missing.
    n_range_inconsistent, range_inconsistent_dates
        Rows with close outside ``[low, high]``: spread and volatility missing.
    n_zero_spread, zero_spread_dates
        Days whose Abdi-Ranaldo spread estimate is zero (log would be -inf): spread missing.
    n_zero_return_floored : int
        Days with ``|log return| < 1e-4`` whose return was floored at 1e-4 in the Amihud ratio
        (values stay finite; not missing).
    n_warmup : int
        Rows without enough trailing history for at least one observable (only at the start of
        the file): those observables are missing.
    n_gaps, gaps
        Consecutive rows with at least five business days between them (four or more weekdays
        without a row; regular exchange holidays never close that long), as ``(before,
        after)`` pairs. The model treats a gap as one step.
    log_transformed : tuple of str
        Extra columns that were log-transformed (strictly positive over the window).
    transform_fitted : bool
        True if the standardisation was fitted on this window, False if a given
        :class:`~stressflow.data.FeatureTransform` was applied.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    n_rows: int
    spread_source: str
    n_missing: dict[str, int]
    n_empty_cells: dict[str, int] = field(default_factory=dict)
    n_zero_volume: int = 0
    zero_volume_dates: tuple[pd.Timestamp, ...] = ()
    n_flat_range: int = 0
    flat_range_dates: tuple[pd.Timestamp, ...] = ()
    n_range_inconsistent: int = 0
    range_inconsistent_dates: tuple[pd.Timestamp, ...] = ()
    n_zero_spread: int = 0
    zero_spread_dates: tuple[pd.Timestamp, ...] = ()
    n_zero_return_floored: int = 0
    n_warmup: int = 0
    n_gaps: int = 0
    gaps: tuple[tuple[pd.Timestamp, pd.Timestamp], ...] = ()
    log_transformed: tuple[str, ...] = ()
    transform_fitted: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; dates become ISO ``YYYY-MM-DD`` strings."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, pd.Timestamp):
                value = _iso(value)
            elif f.name == "gaps":
                value = [[_iso(a), _iso(b)] for a, b in value]
            elif f.name.endswith("_dates"):
                value = [_iso(d) for d in value]
            elif isinstance(value, dict):
                value = {str(k): int(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def __str__(self) -> str:
        lines = [
            f"DataReport {_iso(self.start)} .. {_iso(self.end)}: {self.n_rows} rows "
            f"(spread: {self.spread_source}; transform "
            f"{'fitted here' if self.transform_fitted else 'given'})",
            "  missing per feature: " + ", ".join(f"{k}={v}" for k, v in self.n_missing.items()),
        ]
        if self.n_empty_cells:
            lines.append(
                "  empty input cells: "
                + ", ".join(f"{k}={v}" for k, v in self.n_empty_cells.items())
            )
        entries = [
            (
                "zero-volume rows (all observables missing)",
                self.n_zero_volume,
                self.zero_volume_dates,
            ),
            (
                "flat high == low rows (spread, volatility missing)",
                self.n_flat_range,
                self.flat_range_dates,
            ),
            (
                "close outside [low, high] (spread, volatility missing)",
                self.n_range_inconsistent,
                self.range_inconsistent_dates,
            ),
            ("zero spread estimates (spread missing)", self.n_zero_spread, self.zero_spread_dates),
        ]
        for label, count, dates in entries:
            lines.append(f"  {label}: {count}" + (f" [{_short(dates)}]" if count else ""))
        lines.append(f"  returns floored at 1 bp (impact): {self.n_zero_return_floored}")
        lines.append(f"  warm-up rows (insufficient history): {self.n_warmup}")
        gap_text = ", ".join(f"{_iso(a)} -> {_iso(b)}" for a, b in self.gaps[:5])
        lines.append(f"  gaps: {self.n_gaps}" + (f" [{gap_text}]" if self.n_gaps else ""))
        if self.log_transformed:
            lines.append(f"  log-transformed extra columns: {', '.join(self.log_transformed)}")
        return "\n".join(lines)
