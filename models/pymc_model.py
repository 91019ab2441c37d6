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

import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from stressflow.models import dims
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
    if spec.order_feature not in names:
        raise ValueError(
            f"order_feature {spec.order_feature!r} is not among the features {names}"
        )
    emission, transitions = components(spec)
    stages = list(dims.STAGES[:spec.n_stages])
    coords = {
        dims.STAGE: stages,
        dims.STAGE_FROM: stages,
        dims.STAGE_TO: stages,
        dims.FEATURE: names,
        dims.FEATURE_OTHER: [n for n in names if n != spec.order_feature],
        dims.TIME: pd.DatetimeIndex(features.index),
    }
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
