"""The four-stage stress HMM as a PyMC model.

Hidden state: the stress stage ``stage_t`` in (orderly, fragile, margin_pressure,
forced_flow), a first-order Markov chain with ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``.
Observations: the standardised observables ``y_t`` (spread, volatility, volume, impact and any
extra columns), emitted independently given the stage (see :mod:`stressflow.models.emissions`).
The discrete stages are summed out exactly by the forward algorithm
(:func:`stressflow.models.numerics.ops.hmm_logp`), so NUTS samples only the continuous parameters.

Identification: the stage means of the ordering feature (volatility by default) are
constrained ``mu[orderly] < mu[fragile] < mu[margin_pressure] < mu[forced_flow]`` with PyMC's
ordered transform. Every chain and every dataset therefore gives the same meaning to each
label: ``forced_flow`` is the highest-volatility stage, ``orderly`` the calmest.

Priors (on the standardised scale, where each observable has mean 0 and sd 1 over the fit
window):

- ``mu[k, d] ~ Normal(0, 2)``, ordered across stages on the ordering feature;
- ``sigma[k, d] ~ Gamma(2, 2)`` (mean 1, zero density at 0, so no stage can collapse onto a
  single day);
- ``nu[k] ~ Gamma(2, 0.1)`` (Student-t only; mean 20);
- each row of P ~ Dirichlet with concentration 1 off the diagonal and ``1 + stickiness`` on it
  (a sticky prior: with the default stickiness 20 the prior mean of ``P[k, k]`` is 0.875,
  i.e. an expected stage duration of 8 days, far weaker than a decade of daily data);
- ``Pr(stage_1 = k) = 1/4`` (fixed).

With ``transitions="sequential"`` stress builds one stage at a time: from stage k the chain
can stay, move to k-1 or k+1, or return directly to orderly; all other entries of P are
structurally zero (``-inf`` in log space) and each row's Dirichlet covers only its allowed
entries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from stressflow.models import dims
from stressflow.models.emissions import (
    EMISSIONS,
    emission_loglik,
    gaussian_design,
    gaussian_loglik,
    masked_observations,
)
from stressflow.models.numerics.ops import hmm_logp

__all__ = ["ModelSpec", "build_model", "allowed_transitions", "model_data", "TRANSITIONS"]

TRANSITIONS = ("full", "sequential")


@dataclass(frozen=True)
class ModelSpec:
    """Options of the stage model (all serialisable, stored with every fit).

    Attributes
    ----------
    emission : {"gaussian", "student_t"}
        Per-stage emission family of each observable.
    transitions : {"full", "sequential"}
        ``"full"``: any stage can follow any stage. ``"sequential"``: stress moves one stage
        at a time, with a direct return to orderly allowed.
    stickiness : float
        Extra Dirichlet concentration on the diagonal of P (>= 0).
    order_feature : str
        Observable whose stage means are ordered to identify the labels.
    mu_prior_sd : float
        Prior standard deviation of the stage means (standardised units).
    """

    emission: Literal["gaussian", "student_t"] = "gaussian"
    transitions: Literal["full", "sequential"] = "full"
    stickiness: float = 20.0
    order_feature: str = "volatility"
    mu_prior_sd: float = 2.0

    def __post_init__(self):
        if self.emission not in EMISSIONS:
            raise ValueError(f"emission must be one of {EMISSIONS}, got {self.emission!r}")
        if self.transitions not in TRANSITIONS:
            raise ValueError(
                f"transitions must be one of {TRANSITIONS}, got {self.transitions!r}"
            )
        if not (np.isfinite(self.stickiness) and self.stickiness >= 0):
            raise ValueError(f"stickiness must be a finite number >= 0, got {self.stickiness!r}")
        if not (np.isfinite(self.mu_prior_sd) and self.mu_prior_sd > 0):
            raise ValueError(f"mu_prior_sd must be > 0, got {self.mu_prior_sd!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def allowed_transitions(transitions: str, n_stages: int = len(dims.STAGES)) -> np.ndarray:
    """Boolean ``(K, K)`` mask of the transitions ``i -> j`` that P may give positive mass."""
    if transitions == "full":
        return np.ones((n_stages, n_stages), dtype=bool)
    if transitions == "sequential":
        idx = np.arange(n_stages)
        mask = np.abs(idx[:, None] - idx[None, :]) <= 1
        mask[:, 0] = True  # a direct return to orderly is always possible
        return mask
    raise ValueError(f"transitions must be one of {TRANSITIONS}, got {transitions!r}")


def _transition_matrix(spec: ModelSpec, n_stages: int):
    """Register the Dirichlet rows of P in the current model; return (P, log P)."""
    allowed = allowed_transitions(spec.transitions, n_stages)
    conc = np.where(np.eye(n_stages, dtype=bool), 1.0 + spec.stickiness, 1.0)
    if allowed.all():
        trans = pm.Dirichlet("P", a=conc, dims=(dims.STAGE_FROM, dims.STAGE_TO))
        return trans, pt.log(trans)
    trans = pt.zeros((n_stages, n_stages))
    log_trans = pt.full((n_stages, n_stages), -np.inf)
    for i, stage in enumerate(dims.STAGES[:n_stages]):
        cols = np.flatnonzero(allowed[i])
        row = pm.Dirichlet(f"P_row_{stage}", a=conc[i, cols])
        trans = pt.set_subtensor(trans[i, cols], row)
        log_trans = pt.set_subtensor(log_trans[i, cols], pt.log(row))
    trans = pm.Deterministic("P", trans, dims=(dims.STAGE_FROM, dims.STAGE_TO))
    return trans, log_trans


def model_data(features: pd.DataFrame, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The arrays that :func:`build_model` stores as data containers, by container name.

    Gaussian emissions: ``"design"`` (T, 3D) and ``"offset"`` (T,) from
    :func:`stressflow.models.emissions.gaussian_design`; Student-t: ``"y0"`` and ``"mask"``
    (T, D) from :func:`stressflow.models.emissions.masked_observations`. Replacing these
    values (same names, any T) refits the same compiled model to another series.
    """
    y0, mask = masked_observations(features.to_numpy(dtype=np.float64))
    if spec.emission == "gaussian":
        design, offset = gaussian_design(y0, mask)
        return {"design": design, "offset": offset}
    return {"y0": y0, "mask": mask}


def build_model(features: pd.DataFrame, spec: ModelSpec | None = None) -> pm.Model:
    """PyMC model of the standardised observables with the stages marginalised out.

    Parameters
    ----------
    features : DataFrame, shape (T, D)
        Standardised observables indexed by trading date; NaN marks a missing value, which is
        skipped in the likelihood (the day keeps its place in the time axis).
    spec : ModelSpec, optional

    Returns
    -------
    pymc.Model
        Free variables ``mu`` (stage, feature), ``sigma`` (stage, feature), the transition
        rows, and ``nu`` (stage) for Student-t emissions; deterministic ``P``
        (stage_from, stage_to). Its joint log density includes
        ``log p(y_1..y_T | theta)`` with the stages summed out (potential ``"hmm_loglik"``).
    """
    spec = spec or ModelSpec()
    names = [str(c) for c in features.columns]
    if spec.order_feature not in names:
        raise ValueError(
            f"order_feature {spec.order_feature!r} is not among the features {names}"
        )
    n_stages = len(dims.STAGES)
    order_idx = names.index(spec.order_feature)
    other_idx = [d for d in range(len(names)) if d != order_idx]

    coords = {
        dims.STAGE: list(dims.STAGES),
        dims.STAGE_FROM: list(dims.STAGES),
        dims.STAGE_TO: list(dims.STAGES),
        dims.FEATURE: names,
        dims.TIME: pd.DatetimeIndex(features.index),
    }
    with pm.Model(coords=coords) as model:
        mu_order = pm.Normal(
            "mu_order",
            mu=0.0,
            sigma=spec.mu_prior_sd,
            dims=dims.STAGE,
            transform=pm.distributions.transforms.ordered,
            initval=np.linspace(-1.5, 1.5, n_stages),
        )
        mu_cols = [None] * len(names)
        mu_cols[order_idx] = mu_order
        if other_idx:
            mu_other = pm.Normal(
                "mu_other", mu=0.0, sigma=spec.mu_prior_sd, shape=(n_stages, len(other_idx))
            )
            for j, d in enumerate(other_idx):
                mu_cols[d] = mu_other[:, j]
        mu = pm.Deterministic("mu", pt.stack(mu_cols, axis=1), dims=(dims.STAGE, dims.FEATURE))
        sigma = pm.Gamma("sigma", alpha=2.0, beta=2.0, dims=(dims.STAGE, dims.FEATURE))
        nu = None
        if spec.emission == "student_t":
            nu = pm.Gamma("nu", alpha=2.0, beta=0.1, dims=dims.STAGE)
        _, log_trans = _transition_matrix(spec, n_stages)
        log_init = pt.constant(np.full(n_stages, -np.log(n_stages)))
        # The observations are data containers (shared variables), not constants, so a compiled
        # log density can be reused for another series of any length (nutpie's ``with_data``).
        data = {name: pm.Data(name, value) for name, value in model_data(features, spec).items()}
        if nu is None:
            log_lik = gaussian_loglik(data["design"], data["offset"], mu, sigma, xp=pt)
        else:
            log_lik = emission_loglik(
                data["y0"], data["mask"], mu, sigma, nu, xp=pt, gammaln=pt.gammaln
            )
        pm.Potential("hmm_loglik", hmm_logp(log_init, log_trans, log_lik))
    return model
