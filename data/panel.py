r"""Several markets on one calendar: the input of the panel (multi-asset) stage model.

A panel is a set of named **assets**, each with the observables its data allows:

``tape`` assets (daily OHLC and volume, e.g. the S&P 500, VW, GME)
    the four tape observables of :func:`stressflow.data.prepare` (``spread``, ``volatility``,
    ``volume``, ``impact``; formulas in :mod:`stressflow.data.observables`), computed on the
    asset's own rows with its own trailing windows;
``rate`` assets (a spread, yield or index level without volume, e.g. BAA-10y, TED, the
    10-year Treasury yield, the VIX close)
    three observables of the level :math:`x_t` (``log x_t`` for an index given
    ``log_level=True``, e.g. VIX), on the asset's own rows:

    ===============  ===========================================================================
    ``level``        :math:`x_t`
    ``change``       :math:`\Delta x_t = x_t - x_{t'}`, :math:`t'` the asset's previous row
    ``change_vol``   :math:`\log \max\big(\sqrt{\tfrac15 \sum_{k<5} \Delta x_{t-k}^2},\
                     10^{-3}\big)`: realised volatility of the changes over the asset's last
                     5 rows (:data:`CHANGE_VOL_ROWS`), floored at :data:`CHANGE_VOL_FLOOR`
                     (0.1 bp of a % series) so that a stretch of unchanged values stays finite
    ===============  ===========================================================================

Calendar: the union of the assets' weekday dates in the window. A day on which an asset has no
row (a Xetra holiday for VW, a FRED holiday for a rate) is missing for that asset only; rows
dated on a weekend (ICE month-end marks) are dropped and counted. Each channel (asset and
observable) is standardised by its own mean and sd over the window. Nothing looks ahead
except this standardisation, as in :func:`stressflow.data.prepare`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from stressflow.data.bundled import load_dataset
from stressflow.data.errors import DataError
from stressflow.data.pipeline import prepare
from stressflow.data.window import to_timestamp
from stressflow.models import dims

__all__ = ["AssetSource", "PanelData", "PANELS", "RATE_OBSERVABLES", "CHANGE_VOL_ROWS",
           "CHANGE_VOL_FLOOR", "channel_name", "prepare_panel"]

#: Observables of a ``rate`` asset, in channel order.
RATE_OBSERVABLES: tuple[str, ...] = ("level", "change", "change_vol")
#: Rows in the realised volatility of a rate's changes.
CHANGE_VOL_ROWS = 5
#: Floor of that volatility (units of the series: 0.001 % = 0.1 bp; 0.1% for a log level).
CHANGE_VOL_FLOOR = 1e-3
#: Separator of asset and observable in a channel name, e.g. ``"sp500:volatility"``.
CHANNEL_SEP = ":"


@dataclass(frozen=True)
class AssetSource:
    """One asset of a panel.

    Attributes
    ----------
    source : str or DataFrame
        A bundled dataset name or a date-indexed frame (never modified).
    kind : {"tape", "rate"}
    column : str, optional
        The level column of a rate asset (e.g. ``"dgs10"``); not used by a tape asset.
    log_level : bool
        Model ``log x_t`` instead of ``x_t`` (an index level such as VIX; needs x > 0).
    """

    source: str | pd.DataFrame
    kind: str = "tape"
    column: str | None = None
    log_level: bool = False

    def __post_init__(self):
        if self.kind not in ("tape", "rate"):
            raise ValueError(f"kind must be 'tape' or 'rate', got {self.kind!r}")
        if self.kind == "rate" and not self.column:
            raise ValueError("a rate asset needs its level column")


#: Bundled panels: name -> assets. ``us_markets``: the US equity, credit, funding, rates and
#: volatility markets (1996-12-31 .. 2017-10-30, the last day with every series). The ICE BofA
#: high-yield OAS is not bundled (ICE terms, ``datasets/SOURCES.md``); Moody's BAA-10y stands
#: in as the credit asset, and a user with the OAS passes it as one more ``rate`` asset.
PANELS: dict[str, dict[str, AssetSource]] = {
    "us_markets": {
        "sp500": AssetSource("sp500", "tape"),
        "baa10y": AssetSource("baa10y", "rate", "baa10y_pct"),
        "ted": AssetSource("ted", "rate", "ted_spread_pct"),
        "treasury_10y": AssetSource("treasury", "rate", "dgs10"),
        "vix": AssetSource("vix", "rate", "close", log_level=True),
    },
}
#: Default window of each bundled panel.
PANEL_WINDOWS: dict[str, tuple[str, str]] = {"us_markets": ("1996-12-31", "2017-10-30")}


def channel_name(asset: str, observable: str) -> str:
    """The channel name of one observable of one asset, ``"<asset>:<observable>"``."""
    return f"{asset}{CHANNEL_SEP}{observable}"


@dataclass(frozen=True)
class PanelData:
    """The standardised observables of several assets on one calendar.

    Attributes
    ----------
    features : DataFrame, shape (T, C)
        Standardised channels, index the calendar (named ``time``), columns the channel names
        (``"<asset>:<observable>"``, axis named ``channel``); NaN where the asset has no
        value that day.
    raw : DataFrame, shape (T, C)
        The same before standardising (``features = (raw - center) / scale``).
    channel_asset : tuple of str
        The asset of each channel, in column order.
    assets : tuple of str
        Asset names, in the order given.
    order_channels : dict
        Per asset, the channel its stages are ordered on (``volatility`` for a tape asset,
        ``change_vol`` for a rate).
    levels : DataFrame, shape (T, A)
        Close (tape) or level (rate) of each asset on the calendar (NaN where absent).
    report : dict
        Per asset: ``source`` (the bundled dataset name, or ``"frame"``), ``kind`` and the
        counts ``rows`` in the window, ``weekend_rows_dropped``, ``days_missing``
        (calendar days without a row), ``nonfinite_cells`` (rate cells missing in the source).
    center, scale : Series
        The standardisation, by channel.
    """

    features: pd.DataFrame
    raw: pd.DataFrame
    channel_asset: tuple[str, ...]
    assets: tuple[str, ...]
    order_channels: dict[str, str]
    levels: pd.DataFrame
    report: dict[str, dict] = field(default_factory=dict)
    center: pd.Series | None = None
    scale: pd.Series | None = None

    @classmethod
    def from_features(cls, features: pd.DataFrame, order_channels: Mapping[str, str]
                      ) -> PanelData:
        """A panel of already standardised channels (e.g. simulated ones, named
        ``"<asset>:<observable>"``); ``raw`` is ``features`` and ``levels`` are NaN."""
        features = features.copy()
        channel_asset = tuple(str(c).split(CHANNEL_SEP)[0] for c in features.columns)
        assets = tuple(dict.fromkeys(channel_asset))
        levels = pd.DataFrame(np.nan, index=features.index, columns=list(assets))
        return cls(features=features, raw=features.copy(), channel_asset=channel_asset,
                   assets=assets, order_channels=dict(order_channels), levels=levels,
                   report={a: {} for a in assets})

    def asset_channels(self, asset: str) -> list[str]:
        """The channel names of one asset, in column order."""
        return [c for c, a in zip(self.features.columns, self.channel_asset, strict=True)
                if a == asset]

    def __repr__(self) -> str:
        t, c = self.features.shape
        return (f"PanelData({t} days x {c} channels, assets {list(self.assets)}, "
                f"{self.features.index[0]:%Y-%m-%d}..{self.features.index[-1]:%Y-%m-%d})")


def _as_frame(source, what: str) -> pd.DataFrame:
    if isinstance(source, str):
        return load_dataset(source)
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        if not isinstance(frame.index, pd.DatetimeIndex):
            if "date" not in frame.columns:
                raise DataError(f"{what}: a frame needs a DatetimeIndex or a 'date' column")
            frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="date")
        return frame.sort_index()
    raise TypeError(f"{what}: source must be a dataset name or a DataFrame, got "
                    f"{type(source).__name__}")


def _rate_observables(name: str, spec: AssetSource, start, end) -> tuple[pd.DataFrame, dict]:
    frame = _as_frame(spec.source, f"asset {name!r}")
    if spec.column not in frame.columns:
        raise DataError(f"asset {name!r}: column {spec.column!r} is absent (columns "
                        f"{list(frame.columns)})")
    x = pd.to_numeric(frame[spec.column], errors="coerce").astype("float64")
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"asset {name!r}: date {dup:%Y-%m-%d} appears twice")
    weekend = x.index.day_of_week >= 5
    n_weekend = int(weekend[(x.index >= start) & (x.index <= end)].sum())
    x = x[~weekend]
    bad = ~np.isfinite(x.to_numpy())
    n_nonfinite = int(bad[(x.index >= start) & (x.index <= end)].sum())
    x = x[~bad]
    if spec.log_level:
        if (x <= 0).any():
            first = x.index[(x <= 0).to_numpy()][0]
            raise DataError(f"asset {name!r}: column {spec.column!r} is <= 0 on "
                            f"{first:%Y-%m-%d}; log_level needs a positive level")
        x = np.log(x)
    change = x.diff()
    rms = np.sqrt((change**2).rolling(CHANGE_VOL_ROWS, min_periods=CHANGE_VOL_ROWS).mean())
    obs = pd.DataFrame({"level": x, "change": change,
                        "change_vol": np.log(np.maximum(rms, CHANGE_VOL_FLOOR))})
    obs = obs[(obs.index >= start) & (obs.index <= end)]
    return obs, {"weekend_rows_dropped": n_weekend, "nonfinite_cells": n_nonfinite}


def _tape_observables(name: str, spec: AssetSource, start, end) -> tuple[pd.DataFrame, dict]:
    prep = prepare(spec.source, start=start, end=end)
    raw = prep.raw[list(dims.FEATURES)]
    close = prep.prices["close"].reindex(raw.index)
    weekend = raw.index.day_of_week >= 5  # off the calendar: dropped here, and counted
    return (raw.assign(_close=close)[~weekend],
            {"weekend_rows_dropped": int(weekend.sum()), "nonfinite_cells": 0})


def prepare_panel(assets: str | Mapping[str, AssetSource], *, start=None, end=None,
                  min_days: int = 60) -> PanelData:
    """Observables of several assets on their union calendar, standardised per channel.

    Parameters
    ----------
    assets : str or mapping of str to AssetSource
        A bundled panel name (:data:`PANELS`, e.g. ``"us_markets"``) or named assets.
    start, end : date-like, optional
        Inclusive window; default the bundled panel's window, or the span of the assets.
    min_days : int
        Fewest calendar days accepted.

    Returns
    -------
    PanelData

    Raises
    ------
    DataError
        A missing column, a duplicated date, a non-positive level with ``log_level``, an asset
        with no row in the window, a constant channel, fewer than ``min_days`` days (each
        message names the asset and column or date); the tape checks of
        :func:`stressflow.data.prepare`.
    """
    if isinstance(assets, str):
        if assets not in PANELS:
            raise ValueError(f"unknown panel {assets!r}; bundled panels: {list(PANELS)}")
        default = PANEL_WINDOWS[assets]
        start = default[0] if start is None else start
        end = default[1] if end is None else end
        assets = PANELS[assets]
    if not isinstance(assets, Mapping) or len(assets) < 1:
        raise ValueError("assets must be a panel name or a non-empty mapping of AssetSource")
    start = to_timestamp(start, "start") if start is not None else pd.Timestamp.min
    end = to_timestamp(end, "end") if end is not None else pd.Timestamp.max
    blocks, levels, report, order = [], {}, {}, {}
    for name, spec in assets.items():
        if not isinstance(spec, AssetSource):
            raise TypeError(f"asset {name!r}: expected an AssetSource, got {type(spec).__name__}")
        if CHANNEL_SEP in name:
            raise ValueError(f"asset name {name!r} must not contain {CHANNEL_SEP!r}")
        reader = _rate_observables if spec.kind == "rate" else _tape_observables
        obs, counts = reader(name, spec, start, end)
        if obs.empty:
            raise DataError(f"asset {name!r} has no row in the window {start:%Y-%m-%d}.."
                            f"{end:%Y-%m-%d}")
        if spec.kind == "tape":
            levels[name] = obs.pop("_close")
            order[name] = channel_name(name, "volatility")
        else:
            levels[name] = np.exp(obs["level"]) if spec.log_level else obs["level"]
            order[name] = channel_name(name, "change_vol")
        source = spec.source if isinstance(spec.source, str) else "frame"
        report[name] = {"source": source, "kind": spec.kind, "rows": len(obs), **counts}
        blocks.append(obs.rename(columns=lambda c, n=name: channel_name(n, c)))
    calendar = pd.DatetimeIndex(sorted(set().union(*(b.index for b in blocks))), name=dims.TIME)
    calendar = calendar[calendar.day_of_week < 5]
    if len(calendar) < min_days:
        raise DataError(f"the panel has {len(calendar)} days in the window, fewer than "
                        f"min_days={min_days}")
    raw = pd.concat([b.reindex(calendar) for b in blocks], axis=1)
    raw.columns.name = dims.CHANNEL
    channel_asset = tuple(c.split(CHANNEL_SEP)[0] for c in raw.columns)
    for name in assets:
        cols = [c for c, a in zip(raw.columns, channel_asset, strict=True) if a == name]
        report[name]["days_missing"] = int(raw[cols].isna().all(axis=1).sum())
    center, scale = raw.mean(), raw.std(ddof=0)
    constant = [c for c in raw.columns if not np.isfinite(scale[c]) or scale[c] == 0]
    if constant:
        raise DataError(f"channel {constant[0]!r} is constant (or empty) over the window")
    features = (raw - center) / scale
    level_frame = pd.DataFrame({n: s.reindex(calendar) for n, s in levels.items()})
    level_frame.columns.name = dims.ASSET
    return PanelData(features=features, raw=raw, channel_asset=channel_asset,
                     assets=tuple(assets), order_channels=order, levels=level_frame,
                     report=report, center=center, scale=scale)
