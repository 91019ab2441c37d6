"""Plain helpers of :class:`stressflow.data.transform.FeatureTransform`: the centre and scale
of each column over a fitting window, and the tuples its fields are normalised to."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = ["center_scale", "float_tuple", "str_tuple"]


def str_tuple(values: Any) -> tuple[str, ...]:
    """Tuple of str from a list/tuple/array, or a single string (as netCDF attrs return)."""
    if values is None:
        return ()
    if isinstance(values, str):
        return (values,) if values else ()
    return tuple(str(v) for v in np.atleast_1d(np.asarray(values, dtype=object)).tolist())


def float_tuple(values: Any) -> tuple[float, ...]:
    """Tuple of float from a list/tuple/array or a single number."""
    return tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype="float64")).tolist())


def center_scale(raw: pd.DataFrame, what: str,
                 may_be_empty: tuple[str, ...] = ()) -> tuple[list[float], list[float]]:
    """Mean and sd (ddof=0) of each column's finite values; DataError if unusable. A column
    named in ``may_be_empty`` with no value at all gets centre 0 and scale 1 (it stays
    missing on every day, so the model takes nothing from it)."""
    centers, scales = [], []
    for name in raw.columns:
        values = raw[name].to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if values.size == 0 and name in may_be_empty:
            centers.append(0.0)
            scales.append(1.0)
            continue
        if values.size < 2:
            raise DataError(
                f"{what} {name!r} has {values.size} non-missing value(s) in the "
                "window; cannot standardise it (widen the window or check the column)"
            )
        center = float(values.mean())
        scale = float(values.std())
        if not scale > 1e-12 * max(1.0, abs(center)):
            raise DataError(
                f"{what} {name!r} is constant over the window (value {center:.6g}, "
                "zero standard deviation); it carries no information and cannot be "
                "standardised"
            )
        centers.append(center)
        scales.append(scale)
    return centers, scales
