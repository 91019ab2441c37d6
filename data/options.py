"""The options of :func:`stressflow.data.prepare`, checked and resolved against a transform.

:func:`resolve_options` applies the precedence rule once: an option passed explicitly must agree
with a given :class:`~stressflow.data.transform.FeatureTransform` (which then supplies every
option left out), and without a transform the library defaults apply.
:func:`check_columns` validates the spread and extra columns of the price table, and
:func:`extra_features` turns the extra columns into (possibly log-transformed) features.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from stressflow.models.dims import FEATURES
from stressflow.models.messages import require_int

from .checks import BAD_TICK_MODES
from .covariate_join import check_max_stale, check_names
from .dropouts import VOLUME_DROPOUT_MODES
from .errors import DataError
from .observables import OPTIONAL_OBSERVABLES
from .prices import first_date, require_positive, to_numeric_column
from .transform import (
    DEFAULT_COVARIATE_MAX_STALE,
    DEFAULT_IMPACT_WINDOW,
    DEFAULT_SPREAD_WINDOW,
    DEFAULT_VOLUME_WINDOW,
    FeatureTransform,
)
from .window import check_window, resolve_option

__all__ = ["PrepareOptions", "check_columns", "extra_features", "resolve_options"]


@dataclass(frozen=True)
class PrepareOptions:
    """The resolved options of one :func:`~stressflow.data.prepare` call (see its docstring
    for each one's meaning)."""

    volume_window: int
    impact_window: int
    spread_window: int
    spread_column: str | None
    extra_columns: tuple[str, ...]
    observables: tuple[str, ...]
    covariates: tuple[str, ...]
    max_stale: int
    volume_dropouts: str

    @property
    def wanted(self) -> list[str]:
        """The spread column (if any) and the extra columns, in that order."""
        spread = [self.spread_column] if self.spread_column is not None else []
        return spread + list(self.extra_columns)


def _as_tuple(values: Iterable[str] | str) -> tuple[str, ...]:
    return (values,) if isinstance(values, str) else tuple(values)


def _from_transform(name: str, given: tuple[str, ...], fitted: tuple[str, ...],
                    what: str) -> tuple[str, ...]:
    if given and given != fitted:
        raise ValueError(f"{name}={list(given)} conflicts with the given transform ({what} "
                         f"{list(fitted)}); leave it out")
    return fitted


def resolve_options(
    transform: FeatureTransform | None,
    *,
    volume_window: int | None,
    impact_window: int | None,
    spread_window: int | None,
    spread_column: str | None,
    extra_columns: Iterable[str] | str,
    observables: Iterable[str] | str,
    transition_covariates: Iterable[str],
    covariate_max_stale: int | None,
    min_rows: int,
    bad_ticks: str,
    volume_dropouts: str | None,
) -> PrepareOptions:
    """Check :func:`~stressflow.data.prepare`'s options and fill those left out from
    ``transform`` (or the defaults). Raises ``ValueError`` naming the option."""
    windows = {
        name: check_window(name, resolve_option(name, value, transform, default))
        for name, value, default in (
            ("volume_window", volume_window, DEFAULT_VOLUME_WINDOW),
            ("impact_window", impact_window, DEFAULT_IMPACT_WINDOW),
            ("spread_window", spread_window, DEFAULT_SPREAD_WINDOW),
        )
    }
    extra_columns = _as_tuple(extra_columns)
    observables = _as_tuple(observables)
    unknown = [name for name in observables if name not in OPTIONAL_OBSERVABLES]
    if unknown:
        raise ValueError(f"unknown observables {unknown}; optional ones: "
                         f"{list(OPTIONAL_OBSERVABLES)}")
    names = check_names(transition_covariates)
    if transform is not None:
        extras = transform.features[len(FEATURES):]
        observables = _from_transform(
            "observables", observables,
            tuple(f for f in extras if f in OPTIONAL_OBSERVABLES), "optional observables")
        extra_columns = _from_transform(
            "extra_columns", extra_columns,
            tuple(f for f in extras if f not in OPTIONAL_OBSERVABLES), "extra features")
        names = _from_transform("transition_covariates", names, transform.covariates,
                                "covariates")
    max_stale = check_max_stale(resolve_option(
        "covariate_max_stale", covariate_max_stale, transform, DEFAULT_COVARIATE_MAX_STALE))
    min_rows = require_int("min_rows", min_rows, 2)
    if bad_ticks not in BAD_TICK_MODES:
        raise ValueError(f"bad_ticks must be one of {BAD_TICK_MODES}, got {bad_ticks!r}")
    volume_dropouts = resolve_option("volume_dropouts", volume_dropouts, transform,
                                     VOLUME_DROPOUT_MODES[0])
    if volume_dropouts not in VOLUME_DROPOUT_MODES:
        raise ValueError(f"volume_dropouts must be one of {VOLUME_DROPOUT_MODES}, "
                         f"got {volume_dropouts!r}")
    return PrepareOptions(
        **windows,
        spread_column=resolve_option("spread_column", spread_column, transform, None),
        extra_columns=extra_columns, observables=observables, covariates=names,
        max_stale=max_stale, volume_dropouts=volume_dropouts)


def check_columns(prices: pd.DataFrame, options: PrepareOptions) -> None:
    """Check that the spread and extra columns are present, distinct, numeric and (spread)
    > 0, converting them to numbers in ``prices`` (a copy owned by the caller); raises
    ``DataError`` naming the column (and the first bad date)."""
    wanted = options.wanted
    absent = [c for c in wanted if c not in prices.columns]
    if absent:
        raise DataError(
            f"column(s) {absent} requested as spread/extra column not found; available "
            f"columns: {', '.join(repr(c) for c in prices.columns)}"
        )
    if len(set(wanted)) != len(wanted):
        raise DataError(f"spread and extra columns must be distinct, got {wanted}")
    clash = [c for c in options.extra_columns if c in FEATURES or c in OPTIONAL_OBSERVABLES]
    if clash:
        raise DataError(
            f"extra column(s) {clash} clash with built-in feature names "
            f"{[*FEATURES, *OPTIONAL_OBSERVABLES]}; rename them with columns="
        )
    for column in wanted:
        prices[column] = to_numeric_column(prices, column)
    spread = options.spread_column
    if spread is not None:
        require_positive(prices, spread, f"spread column {spread!r} must be > 0 but is",
                         "its log is the observable")


def extra_features(raw: pd.DataFrame, in_window: pd.DataFrame, options: PrepareOptions,
                   transform: FeatureTransform | None) -> list[str]:
    """Add each extra column of ``in_window`` to ``raw`` (in place), log-transformed if it is
    strictly positive over the window (or as ``transform`` says); returns the log-transformed
    names. Raises ``DataError`` when a column the transform logs is <= 0 on a new date."""
    log_columns = []
    for column in options.extra_columns:
        values = in_window[column]
        if transform is not None:
            use_log = column in transform.log_columns
        else:
            present = values.dropna()
            use_log = bool(len(present)) and bool((present > 0).all())
        if use_log:
            bad = (values <= 0).to_numpy()
            if bad.any():
                raise DataError(
                    f"extra column {column!r} was log-transformed when the transform was "
                    f"fitted but is {float(values.to_numpy()[bad][0]):.6g} (<= 0) on "
                    f"{first_date(in_window, bad)}"
                )
            raw[column] = np.log(values)
            log_columns.append(column)
        else:
            raw[column] = values
    return log_columns
