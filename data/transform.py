"""Standardisation of raw observables, fitted once and re-applied identically.

A :class:`FeatureTransform` stores everything needed to turn new price data into observables
on exactly the same scale as the data a model was fitted on: the trailing-window lengths, the
spread source, which extra columns were log-transformed, and the centre (mean) and scale
(standard deviation) of each raw observable over the fitting window. If the model has
time-varying transition probabilities it also stores the transition covariates' names, their
centres and scales and the carry-forward limit (see :mod:`stressflow.data.covariates`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd
from stressflow.models import dims
from stressflow.models.dims import FEATURE
from stressflow.models.messages import shown

from .dropouts import VOLUME_DROPOUT_MODES
from .errors import DataError
from .observables import EXTERNAL_OBSERVABLES
from .standardise import center_scale, float_tuple, str_tuple

__all__ = [
    "COVARIATE",
    "DEFAULT_COVARIATE_MAX_STALE",
    "DEFAULT_IMPACT_WINDOW",
    "DEFAULT_SPREAD_WINDOW",
    "DEFAULT_VOLUME_WINDOW",
    "FeatureTransform",
]

DEFAULT_VOLUME_WINDOW = 63
DEFAULT_IMPACT_WINDOW = 252
DEFAULT_SPREAD_WINDOW = 21
#: A covariate value may be carried forward over at most this many trading rows.
DEFAULT_COVARIATE_MAX_STALE = 5
#: Name of the covariate columns' axis (:data:`stressflow.models.dims.COVARIATE`).
COVARIATE = dims.COVARIATE
#: Version 1: features only. Version 2 adds the ``covariate*`` fields; :meth:`to_dict` still
#: writes version 1 when a transform has no covariates, so older readers load it.
_FORMAT_VERSION = 2
_COVARIATE_KEYS = ("covariates", "covariate_center", "covariate_scale", "covariate_max_stale")


@dataclass(frozen=True)
class FeatureTransform:
    """Per-feature standardisation ``(raw - center) / scale`` plus the observable options.

    Parameters
    ----------
    features : tuple of str
        Feature names, in column order: :data:`~stressflow.models.dims.FEATURES` followed by
        any extra columns.
    center : tuple of float
        Mean of each raw feature over the non-missing rows of the fitting window.
    scale : tuple of float
        Standard deviation (``ddof=0``) of each raw feature over the same rows; all > 0.
    volume_window, impact_window, spread_window : int
        Trailing windows (trading rows) used to compute the raw observables.
    spread_column : str or None
        Column whose log is the spread observable; ``None`` for the Abdi-Ranaldo estimate.
    log_columns : tuple of str
        Extra feature columns that were log-transformed (they were strictly positive over
        the fitting window).
    covariates : tuple of str
        Transition covariate names, in column order (empty without covariates).
    covariate_center, covariate_scale : tuple of float
        Mean and standard deviation (``ddof=0``) of each raw covariate over the fitting
        window (covariates have no missing values there); scales > 0.
    covariate_max_stale : int
        Most trading rows a covariate value was allowed to be carried forward (>= 0).
    volume_dropouts : {"keep", "mask"}
        The treatment of volume dropouts (:mod:`stressflow.data.dropouts`); stored only when
        ``"mask"``, so transforms written before it existed load as ``"keep"``.

    Notes
    -----
    Instances compare equal when all fields are equal; :meth:`to_dict` and
    :meth:`from_dict` round-trip exactly (floats are stored at full precision). To keep a
    transform with a netCDF/xarray result, store ``tr.to_json()`` as one string attribute and
    read it back with :meth:`from_json`; :meth:`from_dict` also accepts the numpy arrays
    that netCDF attributes come back as.
    """

    features: tuple[str, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    volume_window: int = DEFAULT_VOLUME_WINDOW
    impact_window: int = DEFAULT_IMPACT_WINDOW
    spread_window: int = DEFAULT_SPREAD_WINDOW
    spread_column: str | None = None
    log_columns: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    covariate_center: tuple[float, ...] = ()
    covariate_scale: tuple[float, ...] = ()
    covariate_max_stale: int = DEFAULT_COVARIATE_MAX_STALE
    volume_dropouts: str = "keep"
    bond_source: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "features", str_tuple(self.features))
        set_(self, "center", float_tuple(self.center))
        set_(self, "scale", float_tuple(self.scale))
        set_(self, "log_columns", str_tuple(self.log_columns))
        if self.spread_column == "":
            set_(self, "spread_column", None)
        n = len(self.features)
        if n == 0 or len(set(self.features)) != n:
            raise ValueError(f"features must be non-empty and unique, got {self.features}")
        if len(self.center) != n or len(self.scale) != n:
            raise ValueError(
                f"center and scale need one value per feature ({n}), got "
                f"{len(self.center)} and {len(self.scale)}"
            )
        for name, c, s in zip(self.features, self.center, self.scale, strict=True):
            if not math.isfinite(c) or not math.isfinite(s) or s <= 0:
                raise ValueError(
                    f"feature {name!r}: center must be finite and scale finite and > 0, "
                    f"got center={c}, scale={s}"
                )
        for option in ("volume_window", "impact_window", "spread_window"):
            value = getattr(self, option)
            if isinstance(value, bool | np.bool_) or int(value) != value or int(value) < 1:
                raise ValueError(f"{option} must be a positive integer, got {shown(value)}")
            set_(self, option, int(value))
        if self.volume_dropouts not in VOLUME_DROPOUT_MODES:
            raise ValueError(f"volume_dropouts must be one of {VOLUME_DROPOUT_MODES}, got "
                             f"{self.volume_dropouts!r}")
        unknown = set(self.log_columns) - set(self.features)
        if unknown:
            raise ValueError(f"log_columns {sorted(unknown)} are not among the features")
        self._check_covariates()

    def _check_covariates(self) -> None:
        set_ = object.__setattr__
        set_(self, "covariates", str_tuple(self.covariates))
        set_(self, "covariate_center", float_tuple(self.covariate_center))
        set_(self, "covariate_scale", float_tuple(self.covariate_scale))
        m = len(self.covariates)
        if len(set(self.covariates)) != m or "" in self.covariates:
            raise ValueError(f"covariates must be unique non-empty names, got {self.covariates}")
        if len(self.covariate_center) != m or len(self.covariate_scale) != m:
            raise ValueError(
                f"covariate_center and covariate_scale need one value per covariate ({m}), got "
                f"{len(self.covariate_center)} and {len(self.covariate_scale)}"
            )
        for name, c, s in zip(
            self.covariates, self.covariate_center, self.covariate_scale, strict=True
        ):
            if not math.isfinite(c) or not math.isfinite(s) or s <= 0:
                raise ValueError(
                    f"covariate {name!r}: center must be finite and scale finite and > 0, "
                    f"got center={c}, scale={s}"
                )
        stale = self.covariate_max_stale
        if isinstance(stale, bool | np.bool_) or int(stale) != stale or int(stale) < 0:
            raise ValueError(f"covariate_max_stale must be an integer >= 0, got {shown(stale)}")
        set_(self, "covariate_max_stale", int(stale))

    @property
    def options(self) -> dict[str, Any]:
        """The options that define the raw observables (everything except center/scale)."""
        return {
            "volume_window": self.volume_window,
            "impact_window": self.impact_window,
            "spread_window": self.spread_window,
            "spread_column": self.spread_column,
            "log_columns": self.log_columns,
            "covariates": self.covariates,
            "covariate_max_stale": self.covariate_max_stale,
            "volume_dropouts": self.volume_dropouts,
        }

    @classmethod
    def fit(
        cls,
        raw: pd.DataFrame,
        *,
        volume_window: int = DEFAULT_VOLUME_WINDOW,
        impact_window: int = DEFAULT_IMPACT_WINDOW,
        spread_window: int = DEFAULT_SPREAD_WINDOW,
        spread_column: str | None = None,
        log_columns: Iterable[str] = (),
        volume_dropouts: str = "keep",
        bond_source: str | None = None,
    ) -> FeatureTransform:
        """Fit centre and scale to raw observables.

        Parameters
        ----------
        raw : pandas.DataFrame
            Raw observables over the fitting window (columns are the features, NaN =
            missing), e.g. :attr:`PreparedData.raw <stressflow.data.PreparedData.raw>`.
        volume_window, impact_window, spread_window, spread_column, log_columns, volume_dropouts
            The options the raw observables were computed with (recorded, not used here).
        bond_source : {"bundled", "covariate_data"}, optional
            Where ``bond_vol_surprise``'s yield came from (recorded so that an update takes it
            from the same place).

        Returns
        -------
        FeatureTransform

        Raises
        ------
        DataError
            If a feature has fewer than two non-missing values or is constant (zero standard
            deviation) over the window; the message names the feature.
        """
        centers, scales = center_scale(raw, "observable", EXTERNAL_OBSERVABLES)
        return cls(
            features=tuple(str(c) for c in raw.columns),
            center=tuple(centers),
            scale=tuple(scales),
            volume_window=volume_window,
            impact_window=impact_window,
            spread_window=spread_window,
            spread_column=spread_column,
            log_columns=tuple(log_columns),
            volume_dropouts=volume_dropouts,
            bond_source=bond_source,
        )

    def with_covariates(
        self, raw_covariates: pd.DataFrame, *, max_stale: int = DEFAULT_COVARIATE_MAX_STALE
    ) -> FeatureTransform:
        """A copy of this transform with covariate centres and scales fitted to ``raw_covariates``.

        Parameters
        ----------
        raw_covariates : pandas.DataFrame
            Raw covariates over the fitting window (columns = covariate names), e.g.
            :attr:`PreparedData.raw_covariates <stressflow.data.PreparedData.raw_covariates>`.
        max_stale : int
            The carry-forward limit they were computed with (recorded, not used here).

        Raises
        ------
        DataError
            If a covariate has fewer than two finite values or is constant over the window.
        """
        centers, scales = center_scale(raw_covariates, "covariate")
        return replace(
            self,
            covariates=tuple(str(c) for c in raw_covariates.columns),
            covariate_center=tuple(centers),
            covariate_scale=tuple(scales),
            covariate_max_stale=max_stale,
        )

    def apply_covariates(self, raw_covariates: pd.DataFrame) -> pd.DataFrame:
        """Standardise raw covariates: ``(raw - covariate_center) / covariate_scale``.

        Parameters
        ----------
        raw_covariates : pandas.DataFrame
            Columns must equal :attr:`covariates` (same order; may be empty).

        Returns
        -------
        pandas.DataFrame
            A new frame with the same index, columns named ``"covariate"``.
        """
        names = tuple(str(c) for c in raw_covariates.columns)
        if names != self.covariates:
            raise DataError(
                f"covariate columns {list(names)} do not match the transform's covariates "
                f"{list(self.covariates)}"
            )
        values = (
            raw_covariates.to_numpy(dtype="float64") - np.asarray(self.covariate_center)
        ) / np.asarray(self.covariate_scale)
        return pd.DataFrame(
            values.reshape(len(raw_covariates), len(names)),
            index=raw_covariates.index.copy(),
            columns=pd.Index(list(self.covariates), name=COVARIATE, dtype=object),
        )

    def _check_columns(self, frame: pd.DataFrame) -> None:
        if tuple(str(c) for c in frame.columns) != self.features:
            raise DataError(
                f"columns {list(map(str, frame.columns))} do not match the transform's "
                f"features {list(self.features)}"
            )

    def apply(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Standardise raw observables: ``(raw - center) / scale`` per feature.

        Parameters
        ----------
        raw : pandas.DataFrame
            Columns must equal :attr:`features` (same order). NaN stays NaN.

        Returns
        -------
        pandas.DataFrame
            A new frame with the same index and columns (columns named
            :data:`~stressflow.models.dims.FEATURE`).
        """
        self._check_columns(raw)
        values = (raw.to_numpy(dtype="float64") - np.asarray(self.center)) / np.asarray(self.scale)
        return pd.DataFrame(
            values, index=raw.index.copy(), columns=pd.Index(self.features, name=FEATURE)
        )

    def inverse(self, features: pd.DataFrame) -> pd.DataFrame:
        """Undo :meth:`apply`: ``features * scale + center`` (raw log-scale observables)."""
        self._check_columns(features)
        values = features.to_numpy(dtype="float64") * np.asarray(self.scale) + np.asarray(
            self.center
        )
        return pd.DataFrame(
            values, index=features.index.copy(), columns=pd.Index(self.features, name=FEATURE)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (lists, str, int, float, None) with a format version.

        Without covariates (and the default ``covariate_max_stale``) the dict is exactly the
        version-1 format, without ``covariate*`` keys; otherwise it is version 2.
        """
        out = asdict(self)
        if self.volume_dropouts == "keep":
            del out["volume_dropouts"]  # the format from before the option, read as "keep"
        if self.bond_source is None:
            del out["bond_source"]  # no bond observable: the format from before it
        for key in ("features", "center", "scale", "log_columns", *_COVARIATE_KEYS[:3]):
            out[key] = list(out[key])
        if self.covariates or self.covariate_max_stale != DEFAULT_COVARIATE_MAX_STALE:
            out["version"] = _FORMAT_VERSION
        else:
            for key in _COVARIATE_KEYS:
                del out[key]
            out["version"] = 1
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureTransform:
        """Rebuild a transform from :meth:`to_dict` output (or netCDF attributes).

        Version-1 dicts (written before transition covariates existed) load as transforms
        without covariates.
        """
        d = dict(d)
        version = int(np.asarray(d.pop("version", 1)).item())
        if version not in (1, _FORMAT_VERSION):
            raise ValueError(f"unsupported FeatureTransform format version {version}")
        if version == 1 and set(_COVARIATE_KEYS) & set(d):
            raise ValueError("a version-1 FeatureTransform dict cannot have covariate fields")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FeatureTransform field(s): {sorted(unknown)}")
        for key in ("volume_window", "impact_window", "spread_window", "covariate_max_stale"):
            if key in d:
                d[key] = int(np.asarray(d[key]).item())
        for key in ("volume_dropouts", "bond_source"):
            if key in d and d[key] is not None:
                d[key] = str(np.asarray(d[key]).item())
        if "spread_column" in d and d["spread_column"] is not None:
            d["spread_column"] = str(np.asarray(d["spread_column"]).item()) or None
        return cls(**d)

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string (e.g. for one netCDF attribute)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> FeatureTransform:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
