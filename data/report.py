"""What :func:`~stressflow.data.prepare` did to the data, counted per treatment."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from .dates import business_days_between
from .dropouts import DROPOUT_SD
from .errors import format_dates, iso_date, warn_data

__all__ = ["GAP_BUSINESS_DAYS", "DataReport", "emit_warnings"]

#: Two consecutive rows form a gap when ``numpy.busday_count(before, after)`` is at least
#: this (four or more weekdays without a row). Regular closures stay below it: long weekends
#: (2), Hurricane Sandy 2012 and the 2007 Ford funeral + New Year (3), Xetra Christmas (4);
#: the 9/11 closure (2001-09-10 -> 2001-09-17) is 5.
GAP_BUSINESS_DAYS = 5


def _short(dates: tuple[pd.Timestamp, ...], limit: int = 5) -> str:
    text = ", ".join(iso_date(d) for d in dates[:limit])
    return text + (f", ... (+{len(dates) - limit})" if len(dates) > limit else "")


def find_gaps(index: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Consecutive rows at least :data:`GAP_BUSINESS_DAYS` business days apart."""
    if len(index) < 2:
        return []
    counts = business_days_between(index)
    return [(index[i], index[i + 1]) for i in np.flatnonzero(counts >= GAP_BUSINESS_DAYS)]


def window_dates(mask: pd.Series, window: np.ndarray) -> tuple[pd.Timestamp, ...]:
    """Dates where ``mask`` is True inside ``window``."""
    selected = mask.to_numpy() & window
    return tuple(mask.index[selected])


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
    n_bad_ticks, bad_tick_dates
        Suspected bad ticks (a price that jumps by more than 20 robust sd and jumps back the
        next day; rule in :mod:`stressflow.data.checks`).
    bad_ticks : str
        Their treatment: ``"mask"`` (that day's prices missing) or ``"keep"``.
    n_suspected_splits, suspected_split_dates, suspected_split_ratios
        Suspected unadjusted share splits (a close that moves at a split ratio and stays while
        volume shifts the other way; rule in :mod:`stressflow.data.checks`) and each one's
        ``c_{t-1} / c_t``; the data are used as given and a DataWarning says so.
    n_volume_dropouts, volume_dropout_dates
        Volume dropouts (abnormal volume more than 5 robust sd below its trailing median: an
        early close or a bad volume record; rule in :mod:`stressflow.data.dropouts`).
    volume_dropouts : str
        Their treatment: ``"mask"`` (that day's volume and impact missing) or ``"keep"``.
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
    covariates : tuple of str
        Transition covariates (see :mod:`stressflow.data.covariates`); empty if none.
    covariate_sources : dict of str to str
        Where each covariate's series came from (bundled dataset, a column, the price tape).
    n_covariate_carried, covariate_carried_dates
        Per covariate: window rows without an observation of their own, which carry the
        last observed value forward (causal as-of join), and their dates.
    covariate_max_carried : dict of str to int
        Per covariate: the most trading rows a carried value was old in the window.
    n_covariate_off_calendar : dict of str to int
        Per covariate: source observations dated inside the window on a day that is not a
        price row (used only as carried values for the following rows).
    """

    start: pd.Timestamp
    end: pd.Timestamp
    n_rows: int
    spread_source: str
    n_missing: dict[str, int]
    n_empty_cells: dict[str, int] = field(default_factory=dict)
    n_bad_ticks: int = 0
    bad_tick_dates: tuple[pd.Timestamp, ...] = ()
    bad_ticks: str = "mask"
    n_suspected_splits: int = 0
    suspected_split_dates: tuple[pd.Timestamp, ...] = ()
    suspected_split_ratios: tuple[float, ...] = ()
    n_volume_dropouts: int = 0
    volume_dropout_dates: tuple[pd.Timestamp, ...] = ()
    volume_dropouts: str = "keep"
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
    covariates: tuple[str, ...] = ()
    covariate_sources: dict[str, str] = field(default_factory=dict)
    n_covariate_carried: dict[str, int] = field(default_factory=dict)
    covariate_carried_dates: dict[str, tuple[pd.Timestamp, ...]] = field(default_factory=dict)
    covariate_max_carried: dict[str, int] = field(default_factory=dict)
    n_covariate_off_calendar: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; dates become ISO ``YYYY-MM-DD`` strings."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, pd.Timestamp):
                value = iso_date(value)
            elif f.name == "gaps":
                value = [[iso_date(a), iso_date(b)] for a, b in value]
            elif f.name == "covariate_carried_dates":
                value = {str(k): [iso_date(d) for d in v] for k, v in value.items()}
            elif f.name == "covariate_sources":
                value = {str(k): str(v) for k, v in value.items()}
            elif f.name.endswith("_dates"):
                value = [iso_date(d) for d in value]
            elif isinstance(value, dict):
                value = {str(k): int(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def __str__(self) -> str:
        lines = [
            f"DataReport {iso_date(self.start)} .. {iso_date(self.end)}: {self.n_rows} rows "
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
                f"suspected bad ticks ({self.bad_ticks})",
                self.n_bad_ticks,
                self.bad_tick_dates,
            ),
            (
                "suspected unadjusted splits (used as given)",
                self.n_suspected_splits,
                self.suspected_split_dates,
            ),
            (
                f"volume dropouts ({self.volume_dropouts})",
                self.n_volume_dropouts,
                self.volume_dropout_dates,
            ),
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
        gap_text = ", ".join(f"{iso_date(a)} -> {iso_date(b)}" for a, b in self.gaps[:5])
        lines.append(f"  gaps: {self.n_gaps}" + (f" [{gap_text}]" if self.n_gaps else ""))
        if self.log_transformed:
            lines.append(f"  log-transformed extra columns: {', '.join(self.log_transformed)}")
        for name in self.covariates:
            n = self.n_covariate_carried.get(name, 0)
            lines.append(
                f"  covariate {name} ({self.covariate_sources.get(name, '?')}): {n} day(s) "
                f"carried forward (oldest {self.covariate_max_carried.get(name, 0)} rows), "
                f"{self.n_covariate_off_calendar.get(name, 0)} off-calendar observation(s)"
            )
        return "\n".join(lines)


def emit_warnings(report: DataReport) -> None:
    """One DataWarning per treatment that affected the window (count and first dates)."""
    if report.n_empty_cells:
        cells = ", ".join(f"{k}: {v}" for k, v in report.n_empty_cells.items())
        warn_data(
            f"empty cells in the window ({cells}); the observables that need them are missing "
            "on those dates"
        )
    if report.n_bad_ticks:
        treatment = (
            "their high, low and close are treated as missing (that day's observables and the "
            "next day's impact are missing; bad_ticks='keep' uses them)"
            if report.bad_ticks == "mask"
            else "kept as given (bad_ticks='keep')"
        )
        warn_data(
            f"{report.n_bad_ticks} suspected bad tick(s): a price jumps by more than 20 robust "
            f"sd and jumps back the next day; {treatment}; first: "
            f"{format_dates(report.bad_tick_dates)}"
        )
    if report.n_suspected_splits:
        shown = ", ".join(f"{iso_date(d)} ({ratio:.2f} to 1)" for d, ratio in
                          zip(report.suspected_split_dates[:5], report.suspected_split_ratios[:5],
                              strict=False))
        warn_data(
            f"{report.n_suspected_splits} suspected unadjusted share split(s): the close moves "
            "by a split ratio and stays, on a day that traded at the new level, and share "
            "volume shifts by about the ratio the other way; the prices are used as given. If "
            "the shares were split that day, adjust the prices and volume before it (or pass "
            "split-adjusted data): left in, a split gives the volume observable weeks of false "
            f"abnormal volume; {shown}"
        )
    if report.n_volume_dropouts:
        treatment = (
            "their volume and impact are treated as missing (volume_dropouts='keep' uses them)"
            if report.volume_dropouts == "mask"
            else "kept as given (volume_dropouts='keep')"
        )
        warn_data(
            f"{report.n_volume_dropouts} volume dropout(s): volume more than {DROPOUT_SD:g} "
            "robust sd below its trailing median (an early close or a bad volume record); "
            f"{treatment}; first: "
            f"{format_dates(report.volume_dropout_dates)}"
        )
    if report.n_zero_volume:
        warn_data(
            f"{report.n_zero_volume} zero-volume row(s) (non-trading days, e.g. exchange "
            "holidays): all observables are missing on those dates, which stay in the index "
            f"and enter no trailing window; first: {format_dates(report.zero_volume_dates)}"
        )
    if report.n_flat_range:
        warn_data(
            f"{report.n_flat_range} row(s) with high == low (no range information): spread "
            f"and volatility are missing; first: {format_dates(report.flat_range_dates)}"
        )
    if report.n_range_inconsistent:
        warn_data(
            f"{report.n_range_inconsistent} row(s) with close outside [low, high] "
            "(inconsistent prices): spread and volatility are missing; first: "
            f"{format_dates(report.range_inconsistent_dates)}"
        )
    if report.n_zero_spread:
        warn_data(
            f"{report.n_zero_spread} day(s) with a zero Abdi-Ranaldo spread estimate (log "
            f"undefined): spread is missing; first: {format_dates(report.zero_spread_dates)}"
        )
    if report.n_warmup:
        warn_data(
            f"{report.n_warmup} row(s) at the start of the data have too little trailing "
            "history for at least one observable, which is missing there (warm-up)"
        )
    if report.n_gaps:
        listed = ", ".join(f"{a:%Y-%m-%d} -> {b:%Y-%m-%d}" for a, b in report.gaps[:5])
        warn_data(
            f"{report.n_gaps} gap(s) of {GAP_BUSINESS_DAYS} or more business days between "
            f"consecutive rows: {listed}; each gap is treated as a single step"
        )
    for name in report.covariates:
        n = report.n_covariate_carried.get(name, 0)
        if n:
            warn_data(
                f"transition covariate {name!r}: {n} day(s) without an observation of their "
                "own carry the last observed value forward (at most "
                f"{report.covariate_max_carried[name]} trading rows old); first: "
                f"{format_dates(report.covariate_carried_dates[name])}"
            )
