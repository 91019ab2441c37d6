"""The stress-stage HMM as a PyMC model.

Hidden state: the stress stage ``stage_t`` in (orderly, fragile, margin_pressure,
forced_flow, and by default discretionary), a first-order Markov chain with
``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``.
Observations: the standardised observables ``y_t`` (spread, volatility, volume, impact and any
extra columns), emitted independently given the stage (see :mod:`stressflow.models.emissions`).
The discrete stages are summed out exactly by the forward algorithm
(:func:`stressflow.models.numerics.ops.hmm_logp`), so NUTS samples only the continuous parameters.

Identification (default, ``compulsion_feature="vol_surprise"``): forced flow is the stage with
the highest mean of the compulsion feature (a volatility *break* against the trailing year),
and the other stages' means of the ordering feature (volatility) are constrained
``mu[orderly] < mu[fragile] < mu[margin_pressure] < mu[discretionary]`` with PyMC's ordered
transform (:class:`stressflow.models.emissions.GaussianEmission`). Every chain and every
dataset therefore gives the same meaning to each label: forced flow is the sudden break,
discretionary the most volatile of the other stages, orderly the calmest. Without a compulsion
feature (:meth:`ModelSpec.base`), all stages are ordered on volatility and forced flow is the
highest-volatility stage.

Priors (on the standardised scale, where each observable has mean 0 and sd 1 over the fit
window):

- ``mu[k, d] ~ Normal(0, 2)``, ordered across stages on the ordering feature;
- ``sigma[k, d] ~ Gamma(2, 2)`` (mean 1, zero density at 0, so no stage can collapse onto a
  single day);
- ``nu[k] ~ Gamma(2, 0.1)`` (Student-t only; mean 20);
- each row of P ~ Dirichlet with per-stage concentrations set from the stages' prior expected
  durations (``ModelSpec.stage_durations``; :func:`stressflow.models.transitions
  .dirichlet_concentration`), or ``1 + stickiness`` on the diagonal and 1 elsewhere;
- ``Pr(stage_1 = k) = 1/K`` (fixed).

With ``transitions="gated"`` (default) stress builds one stage at a time along the ladder:
from a ladder stage the chain can stay, move one stage up or down, return directly to orderly,
or enter the discretionary stage, and the discretionary stage can move to any stage but forced
flow (``"sequential"`` allows that move too); all other entries of P are structurally zero
(``-inf`` in log space) and each row's Dirichlet covers only its allowed entries.
"""

from __future__ import annotations

import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from stressflow.models import dims
from stressflow.models.emissions import other_features, ranked_stage_names
from stressflow.models.evaluate import components, evaluate, model_data
from stressflow.models.numerics.ops import hmm_logp
from stressflow.models.spec import ModelSpec

__all__ = ["build_model"]


def build_model(features: pd.DataFrame, spec: ModelSpec | None = None,
                covariates: pd.DataFrame | None = None) -> pm.Model:
    """PyMC model of the standardised observables with the stages marginalised out.

    Parameters
    ----------
    features : DataFrame, shape (T, D)
        Standardised observables indexed by trading date; NaN marks a missing value, which is
        skipped in the likelihood (the day keeps its place in the time axis).
    spec : ModelSpec, optional
    covariates : DataFrame, shape (T, C), optional
        Standardised transition covariates (required by a time-varying transition model).

    Returns
    -------
    pymc.Model
        The emission component's variables (``mu`` (stage, feature) via ``mu_order`` /
        ``mu_other``, ``sigma`` (stage, feature), ``nu`` (stage) for Student-t), the transition
        component's (``P`` (stage_from, stage_to), its Dirichlet rows, and ``beta``
        (covariate, stage_from, stage_to) or ``gamma`` (covariate) when covariate-driven). Its
        joint log density includes ``log p(y_1..y_T | theta)`` with the stages summed out
        (potential ``"hmm_loglik"``), from :func:`stressflow.models.evaluate.evaluate`.
    """
    spec = spec or ModelSpec()
    names = [str(c) for c in features.columns]
    emission, transitions = components(spec)
    stages = list(spec.stage_names)
    coords = {
        dims.STAGE: stages,
        dims.STAGE_FROM: stages,
        dims.STAGE_TO: stages,
        dims.FEATURE: names,
        dims.FEATURE_OTHER: other_features(spec, names),
        dims.TIME: pd.DatetimeIndex(features.index),
    }
    if spec.compulsion_feature is not None:
        coords[dims.STAGE_RANKED] = ranked_stage_names(spec)
    if spec.time_varying:
        coords[dims.COVARIATE] = list(spec.transition_covariates)
    values = model_data(spec, features, covariates)
    with pm.Model(coords=coords) as model:
        params = emission.add_priors(spec, names)
        params.update(transitions.add_priors(spec))
        # The observations are data containers (shared variables), not constants, so a compiled
        # log density can be reused for another series of any length (nutpie's ``with_data``).
        data = {name: pm.Data(name, value) for name, value in values.items()}
        log_init, log_trans, log_lik = evaluate(spec, params, data, xp=pt)
        pm.Potential("hmm_loglik", hmm_logp(log_init, log_trans, log_lik))
    return model
