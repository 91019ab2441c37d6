"""The model specification: which components make up the stage model, and their options.

A :class:`ModelSpec` names one **emission** component (``log p(y_t | stage_t = k)``, see
:mod:`stressflow.models.emissions`) and one **transition** component (``log Pr(stage_t = j |
stage_{t-1} = i)``, constant or driven by covariates, see :mod:`stressflow.models.transitions`),
plus the priors and the identification rule. It is stored with every fit (``to_dict``) and read
back with :meth:`ModelSpec.from_dict`, so every consumer of a fit knows the model it came from
instead of guessing it from the variables present. The one evaluator that turns a spec,
parameter values and data into ``(log_init, log_trans, log_lik)`` is
:func:`stressflow.models.evaluate.evaluate`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
from stressflow.models import dims
from stressflow.models.messages import require_int, shown

__all__ = ["ModelSpec", "allowed_transitions", "EMISSIONS", "STRUCTURES", "TRANSITION_MODELS",
           "FRAMEWORK_DURATIONS", "EXTRA_STAGE_DURATION"]

#: Emission families (components in :mod:`stressflow.models.emissions`).
EMISSIONS = ("gaussian", "student_t")
#: Which transitions P may give positive mass (see :func:`allowed_transitions`).
STRUCTURES = ("full", "sequential", "gated")
#: Transition components (:mod:`stressflow.models.transitions`): one constant P, or P_t driven
#: by the covariates of day t-1 through a multinomial logit or the stage ladder.
TRANSITION_MODELS = ("constant", "logit", "ladder")


@dataclass(frozen=True)
class ModelSpec:
    """Options of the stage model (all serialisable, stored with every fit).

    Attributes
    ----------
    emission : {"gaussian", "student_t"}
        Per-stage emission family of each observable.
    transitions : {"full", "sequential", "gated"}
        Structure of P: ``"full"``, any stage can follow any stage; ``"sequential"``, stress
        moves one stage at a time, with a direct return to orderly allowed; ``"gated"``, as
        ``"sequential"`` but forced flow is entered from margin pressure only (not from a
        stage beyond the ladder such as discretionary).
    transition_model : {"constant", "logit", "ladder"}
        ``"constant"``: one P for every day. ``"logit"`` / ``"ladder"``: time-varying
        ``P_t = P(z_{t-1})`` driven by ``transition_covariates`` (formulas in
        :mod:`stressflow.models.transitions`).
    transition_covariates : tuple of str
        Names of the standardised covariates that drive P_t (required by, and only allowed
        with, a time-varying ``transition_model``).
    stickiness : float
        Extra Dirichlet concentration on the diagonal of P (>= 0), the same for every stage
        (used when ``stage_durations`` is not given).
    stage_durations : tuple of float, optional
        Prior expected duration of each stage in trading days (> 1), e.g. forced flow days to
        weeks, fragile hundreds of days. Row k of P then has the Dirichlet concentration
        ``1 + duration_strength (1 - 1/d_k)`` on the diagonal and ``1 + duration_strength /
        (d_k m_k)`` on each of its ``m_k`` allowed moves, i.e. ``duration_strength``
        pseudo-transitions whose stay share is ``1 - 1/d_k`` (the prior mode of P[k, k] is
        then ``1 - 1/d_k``). Default ``"framework"``: :data:`FRAMEWORK_DURATIONS` of the
        model's stages, ``(250, 250, 20, 7, 40)`` for the five stages, set from the framework's
        description of the stages (orderly and fragile last hundreds of days, margin pressure
        weeks, forced flow days to weeks, a discretionary repricing weeks to months: 40; a
        ``stage_<k>`` beyond them 40 as well), never from the catalogue's labels. ``None``:
        one ``stickiness`` for every stage.
    duration_strength : float
        Number of pseudo-transitions per row behind ``stage_durations`` (> 0).
    observables : tuple of str
        Observables computed from the tape beyond the four built-in ones that the model uses
        (``stressflow.data.observables.OPTIONAL_OBSERVABLES``, e.g. ``"reversal"``);
        :func:`stressflow.inference.fit` prepares them. Default ``("vol_surprise",
        "bond_vol_surprise")``: the compulsion feature
        (:func:`stressflow.data.observables.vol_surprise_observable`) and the bond market's
        turbulence against its year (:func:`stressflow.data.observables
        .bond_vol_surprise_observable`; bundled US 10-year Treasury to 2018-12-31, or a user
        column ``bond_yield_10y_pct``).
        ``"reversal"`` adds the normalised product of consecutive returns
        (:func:`stressflow.data.observables.reversal_observable`); see the README for what it
        does to the catalogue scores and to the cost of a fit.
    n_stages : int, optional
        Number of hidden stages K >= 2; the names are :func:`stressflow.models.dims
        .stage_names` (2: orderly and forced flow; 3: + fragile; 4: the ladder; 5: +
        discretionary; 6 and more: + ``stage_5``, ... outside the ladder). ``None`` (default):
        5 with ``discretionary_stage``, 4 without.
    discretionary_stage : bool, optional
        Add a fifth stage, ``discretionary`` (:data:`stressflow.models.dims.DISCRETIONARY`): a
        high-volatility repricing that is not compulsion. It sits outside the ladder (with
        ``transitions="sequential"`` it can be entered from and left to any stage). ``None``
        (default): True unless ``n_stages`` is below 5; False gives the framework's four
        stages alone. A value that contradicts ``n_stages`` raises ``ValueError``.
    order_feature : str
        Observable whose stage means are ordered to identify the labels (all stages, or, with
        ``compulsion_feature``, the stages other than forced flow).
    compulsion_feature : str, optional
        Observable that identifies forced flow: the forced-flow stage has the highest stage
        mean of it (every other stage's mean is forced flow's minus a positive gap), and the
        other stages are ordered on ``order_feature`` (orderly, fragile, margin_pressure, then
        discretionary). Default ``"vol_surprise"`` (volatility against its own trailing year:
        a break, not a level). ``None``: forced flow is the stage highest on
        ``order_feature``.
    mu_prior_sd : float
        Prior standard deviation of the stage means (standardised units).
    tvtp_prior_sd : float
        Prior standard deviation of each transition coefficient (per standard deviation of
        its covariate, on the logit scale).
    """

    emission: Literal["gaussian", "student_t"] = "gaussian"
    transitions: Literal["full", "sequential", "gated"] = "gated"
    stickiness: float = 20.0
    order_feature: str = "volatility"
    compulsion_feature: str | None = "vol_surprise"
    discretionary_stage: bool | None = None
    mu_prior_sd: float = 2.0
    transition_model: Literal["constant", "logit", "ladder"] = "constant"
    transition_covariates: tuple[str, ...] = ()
    tvtp_prior_sd: float = 1.0
    stage_durations: tuple[float, ...] | Literal["framework"] | None = "framework"
    duration_strength: float = 1000.0
    observables: tuple[str, ...] = ("vol_surprise", "bond_vol_surprise")
    n_stages: int | None = None

    def __post_init__(self):
        self._resolve_stages()
        object.__setattr__(self, "transition_covariates",
                           tuple(str(c) for c in self.transition_covariates))
        object.__setattr__(self, "observables", tuple(str(c) for c in self.observables))
        for name, allowed in (("emission", EMISSIONS), ("transitions", STRUCTURES),
                              ("transition_model", TRANSITION_MODELS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.compulsion_feature is not None and (
                self.compulsion_feature == self.order_feature):
            raise ValueError("compulsion_feature and order_feature must differ, both are "
                             f"{self.order_feature!r}")
        if not (math.isfinite(self.stickiness) and self.stickiness >= 0):
            raise ValueError("stickiness must be a finite number >= 0, got "
                             f"{shown(self.stickiness)}")
        if isinstance(self.stage_durations, str):
            if self.stage_durations != "framework":
                raise ValueError("stage_durations must be durations, 'framework' or None, got "
                                 f"{self.stage_durations!r}")
            object.__setattr__(self, "stage_durations", tuple(
                FRAMEWORK_DURATIONS.get(name, EXTRA_STAGE_DURATION) for name in self.stage_names))
        if self.stage_durations is not None:
            durations = tuple(float(d) for d in self.stage_durations)
            object.__setattr__(self, "stage_durations", durations)
            if len(durations) != self.n_stages or not all(
                    math.isfinite(d) and d > 1 for d in durations):
                raise ValueError(f"stage_durations must be {self.n_stages} finite durations > 1 "
                                 f"(trading days), got {self.stage_durations!r}")
        for name in ("mu_prior_sd", "tvtp_prior_sd", "duration_strength"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {shown(value)}")
        covs = self.transition_covariates
        if len(set(covs)) != len(covs):
            raise ValueError(f"transition_covariates must be unique, got {list(covs)}")
        if self.transition_model == "constant" and covs:
            raise ValueError(
                "transition_covariates need a time-varying transition_model ('logit' or "
                f"'ladder'); got transition_model='constant' with {list(covs)}"
            )
        if self.transition_model != "constant" and not covs:
            raise ValueError(
                f"transition_model={self.transition_model!r} needs at least one name in "
                "transition_covariates"
            )

    def _resolve_stages(self) -> None:
        """Set ``n_stages`` and ``discretionary_stage`` from whichever of them was given."""
        k, disc = self.n_stages, self.discretionary_stage
        if disc is not None and not isinstance(disc, bool | np.bool_):
            raise ValueError(f"discretionary_stage must be True, False or None, got {disc!r}")
        if k is None:
            k = len(dims.STAGES) if disc is None or disc else len(dims.LADDER)
        k = require_int("n_stages", k, dims.MIN_STAGES)
        names = dims.stage_names(k)
        has_disc = dims.DISCRETIONARY in names
        if disc is not None and bool(disc) != has_disc:
            raise ValueError(f"discretionary_stage={bool(disc)} contradicts n_stages={k} (the "
                             f"stages are {list(names)}); give one of them")
        object.__setattr__(self, "n_stages", k)
        object.__setattr__(self, "discretionary_stage", has_disc)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The model's stage names in index order (:func:`stressflow.models.dims.stage_names`)."""
        return dims.stage_names(self.n_stages)

    @property
    def time_varying(self) -> bool:
        """Whether P depends on the day (``log_trans`` has shape (T-1, K, K))."""
        return self.transition_model != "constant"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["transition_covariates"] = list(self.transition_covariates)
        out["observables"] = list(self.observables)
        if self.stage_durations is not None:
            out["stage_durations"] = list(self.stage_durations)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`. A field that a fit file written by an older version lacks
        takes the value that version used (:data:`LEGACY_OPTIONS`, not today's default);
        unknown fields raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model options {unknown}: written by a newer stressflow?")
        return cls(**{**LEGACY_OPTIONS, **values})

    @classmethod
    def base(cls, **options) -> ModelSpec:
        """The default model before the compulsion work: the four built-in observables, the
        four ladder stages ordered on volatility, one stickiness for every stage
        (``observables=()``, ``discretionary_stage=False``, ``compulsion_feature=None``,
        ``stage_durations=None``); with ``n_stages`` given, the stage count is that one."""
        values = {**BASE_OPTIONS, **options}
        if "n_stages" in options and "discretionary_stage" not in options:
            values.pop("discretionary_stage")
        return cls(**values)


#: Prior expected duration (trading days) of each named stage, from the framework's description
#: of the stages (the default ``ModelSpec.stage_durations``).
FRAMEWORK_DURATIONS: dict[str, float] = {
    "orderly": 250.0, "fragile": 250.0, "margin_pressure": 20.0, "forced_flow": 7.0,
    "discretionary": 40.0,
}
#: Prior expected duration of a stage beyond the five named ones (``stage_<k>``).
EXTRA_STAGE_DURATION = 40.0

#: The value of each option that fit files written before the option existed were fitted with.
LEGACY_OPTIONS: dict[str, Any] = {
    "transition_model": "constant",
    "transition_covariates": (),
    "stage_durations": None,
    "observables": (),
    "compulsion_feature": None,
    "discretionary_stage": False,
}

#: The options of :meth:`ModelSpec.base`.
BASE_OPTIONS: dict[str, Any] = {
    "transitions": "full",
    "observables": (),
    "stage_durations": None,
    "compulsion_feature": None,
    "discretionary_stage": False,
}


def allowed_transitions(transitions: str, n_stages: int = len(dims.STAGES)) -> np.ndarray:
    """Boolean ``(K, K)`` mask of the transitions ``i -> j`` that P may give positive mass.

    ``"sequential"``: on the ladder (the first ``min(K, 4)`` stages) stress moves one stage at
    a time, with a direct return to orderly; a stage beyond the ladder (discretionary,
    ``stage_<k>``) can be entered from and left to any stage. ``"gated"``: as
    ``"sequential"``, but a stage beyond the ladder cannot move into forced flow, which is
    entered only from the ladder stage below it (margin pressure when K >= 4): compulsion
    follows margin calls, not a discretionary repricing."""
    if transitions == "full":
        return np.ones((n_stages, n_stages), dtype=bool)
    if transitions in ("sequential", "gated"):
        n_ladder = dims.ladder_size(n_stages)
        idx = np.arange(n_ladder)
        mask = np.ones((n_stages, n_stages), dtype=bool)
        mask[:n_ladder, :n_ladder] = np.abs(idx[:, None] - idx[None, :]) <= 1
        mask[:, 0] = True  # a direct return to orderly is always possible
        if transitions == "gated":
            ff = dims.stage_names(n_stages).index(dims.FORCED_FLOW)
            mask[n_ladder:, ff] = False
        return mask
    raise ValueError(f"transitions must be one of {STRUCTURES}, got {transitions!r}")
