"""The panel stage model's specification: assets, their channels, stages and coupling.

Each asset a has its own stage ``s_{a,t}`` in ``stage_names(K)`` (:func:`stressflow.models.dims
.stage_names`; K = 2 by default: orderly and forced_flow). The panel's hidden state is the
**joint state** ``J_t = (s_{1,t}, .., s_{A,t})``, K**A values, a first-order Markov chain, so the
one set of HMM kernels (:mod:`stressflow.models.numerics.kernels`) sums it out exactly. Three
couplings (``PanelSpec.coupling``):

``"spillover"`` (default, a coupled HMM; Brand 1997)
    given ``J_{t-1}``, the assets move independently, each by its own transition matrix
    ``P[a]`` tilted toward its top stage by the other assets' previous top stages::

        log Pr(s_{a,t} = j | J_{t-1}) = log P[a, s_{a,t-1}, j]
                                        + [j = K-1] sum_{b != a} spillover[a, b] [s_{b,t-1} = K-1]
                                        - (normaliser over j)

    ``spillover[a, b] > 0``: stress in b on day t-1 raises the odds of stress in a on day t
    (b leads a). Joint transition ``Pr(J_t | J_{t-1}) = prod_a Pr(s_{a,t} | J_{t-1})``.
``"none"``
    the same with ``spillover = 0``: independent chains, the null of no migration.
``"shared"``
    one market stage for every asset (``s_{a,t} = s_t``, K joint states, one ``P``): the
    pooled design, where stress cannot lead or lag.

The emission of each channel c (one observable of asset a(c)) is Gaussian given its asset's
stage, channels independent given the joint state:
``log p(y_t | J_t) = sum_c log N(y_{t,c} | mu[s_{a(c),t}, c], sigma[s_{a(c),t}, c])``, missing
channels skipped. Labels are identified per asset: the means of its ordering channel rise with
the stage (orderly the calmest). Cost of one log-density evaluation: O(T (K**A)**2 + T K**A C).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from stressflow.models import dims
from stressflow.models.messages import require_int, shown

__all__ = ["PanelSpec", "COUPLINGS", "MAX_JOINT_STATES"]

#: Couplings of the assets' stages (see the module docstring).
COUPLINGS = ("spillover", "none", "shared")
#: Most joint states K**A accepted (cost grows with their square).
MAX_JOINT_STATES = 64


@dataclass(frozen=True)
class PanelSpec:
    """Options of the panel model (serialisable, stored with every panel fit).

    Attributes
    ----------
    assets : tuple of str
        Asset names, in model order.
    channels : tuple of str
        Channel names (``"<asset>:<observable>"``), in the order of the feature columns.
    channel_asset : tuple of str
        The asset of each channel.
    order_channels : tuple of str
        Per asset (in ``assets`` order), the channel whose stage means are ordered.
    n_stages : int
        Stages per asset, K >= 2 (names :func:`stressflow.models.dims.stage_names`).
    coupling : {"spillover", "none", "shared"}
        With a single asset, always ``"none"``.
    stickiness : float
        Extra Dirichlet concentration on the diagonal of each row of ``P`` (>= 0).
    mu_prior_sd, spillover_prior_sd : float
        Prior sd of the stage means (standardised units) and of each spillover coefficient
        (log-odds per stressed source asset).
    """

    assets: tuple[str, ...]
    channels: tuple[str, ...]
    channel_asset: tuple[str, ...]
    order_channels: tuple[str, ...]
    n_stages: int = 2
    coupling: str = "spillover"
    stickiness: float = 20.0
    mu_prior_sd: float = 2.0
    spillover_prior_sd: float = 1.0

    def __post_init__(self):
        for name in ("assets", "channels", "channel_asset", "order_channels"):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        if self.coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {self.coupling!r}")
        if len(self.assets) == 1:  # one asset: nothing to spill over from or share with
            object.__setattr__(self, "coupling", "none")
        object.__setattr__(self, "n_stages", require_int("n_stages", self.n_stages,
                                                         dims.MIN_STAGES))
        if not self.assets or len(set(self.assets)) != len(self.assets):
            raise ValueError(f"assets must be unique and non-empty, got {list(self.assets)}")
        if len(self.channel_asset) != len(self.channels):
            raise ValueError("channel_asset must name the asset of every channel")
        unknown = sorted(set(self.channel_asset) - set(self.assets))
        if unknown:
            raise ValueError(f"channels belong to unknown assets {unknown}")
        if len(self.order_channels) != len(self.assets):
            raise ValueError("order_channels must give one channel per asset")
        for asset, channel in zip(self.assets, self.order_channels, strict=True):
            if channel not in self.channels or self.channel_asset[
                    self.channels.index(channel)] != asset:
                raise ValueError(f"order channel {channel!r} is not a channel of asset {asset!r}")
        if self.n_joint > MAX_JOINT_STATES:
            raise ValueError(
                f"{len(self.assets)} assets with {self.n_stages} stages each give "
                f"{self.n_joint} joint states, more than {MAX_JOINT_STATES} (the cost grows with "
                "their square); use fewer assets or stages, or coupling='shared'")
        for name in ("stickiness", "mu_prior_sd", "spillover_prior_sd"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name != "stickiness" and value == 0):
                raise ValueError(f"{name} must be a finite number > 0 (stickiness >= 0), got "
                                 f"{shown(value)}")

    @classmethod
    def from_panel(cls, panel, **options) -> PanelSpec:
        """The spec of a :class:`stressflow.data.panel.PanelData`'s assets and channels."""
        return cls(assets=panel.assets, channels=tuple(panel.features.columns),
                   channel_asset=panel.channel_asset,
                   order_channels=tuple(panel.order_channels[a] for a in panel.assets),
                   **options)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Each asset's stage names in index order."""
        return dims.stage_names(self.n_stages)

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    @property
    def n_joint(self) -> int:
        """Number of joint states: K**A, or K with a shared stage."""
        return self.n_stages if self.coupling == "shared" else self.n_stages ** self.n_assets

    @property
    def channel_asset_index(self) -> np.ndarray:
        """``(C,)`` int array: the index in ``assets`` of each channel's asset."""
        return np.array([self.assets.index(a) for a in self.channel_asset], dtype=np.int64)

    @property
    def asset_pairs(self) -> tuple[tuple[int, int], ...]:
        """``(to, from)`` index pairs of the free spillover coefficients (``a != b``)."""
        if self.coupling != "spillover":
            return ()
        a = range(self.n_assets)
        return tuple((i, j) for i in a for j in a if i != j)

    @property
    def pair_names(self) -> list[str]:
        """``"<from>-><to>"`` for each of :attr:`asset_pairs`."""
        return [f"{self.assets[j]}->{self.assets[i]}" for i, j in self.asset_pairs]

    def joint_digits(self) -> np.ndarray:
        """``(n_joint, A)`` int array: row J is every asset's stage in joint state J (the
        first asset's stage varies slowest); with a shared stage, every column is J."""
        k, a = self.n_stages, self.n_assets
        if self.coupling == "shared":
            return np.repeat(np.arange(k)[:, None], a, axis=1)
        grid = np.indices((k,) * a).reshape(a, -1).T
        return np.ascontiguousarray(grid, dtype=np.int64)

    def joint_names(self) -> list[str]:
        """One label per joint state, e.g. ``"orderly|forced_flow"`` (assets in order)."""
        names = self.stage_names
        return ["|".join(names[s] for s in row) for row in self.joint_digits()]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PanelSpec:
        return cls(**values)
