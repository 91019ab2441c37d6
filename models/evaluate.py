"""The one evaluator of the stage model: ``(log_init, log_trans, log_lik)`` from a spec.

Every consumer of the model, the PyMC graph (:mod:`stressflow.models.pymc_model`, with
``xp=pytensor.tensor``) and the NumPy post-processing of posterior draws (stage probabilities,
stage paths, the filter of new days, the EM start, with ``xp=numpy``), calls :func:`evaluate`;
nothing else rebuilds a piece of the model. Its outputs are the inputs of the HMM kernels
(:mod:`stressflow.models.numerics.kernels`), which know nothing about emissions:

- ``log_init[K] = log Pr(stage_1 = k)`` (uniform: ``-log K``);
- ``log_trans[..., K, K] = log Pr(stage_t = j | stage_{t-1} = i)`` for a constant transition
  component, or ``log_trans[..., T-1, K, K]`` with entry ``t-1`` the move into day ``t`` for a
  covariate-driven one;
- ``log_lik[..., T, K] = log p(y_t | stage_t = k)``.

``...`` are the leading dimensions of the parameter arrays (e.g. a chunk of posterior draws);
the graph has none. The generative direction, observables drawn along given stage paths
(:func:`sample_observables`), is the emission component's ``sample``, beside its ``log_lik``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from stressflow.models.emissions import EMISSION_COMPONENTS
from stressflow.models.spec import ModelSpec
from stressflow.models.transitions import TRANSITION_COMPONENTS

__all__ = ["components", "param_names", "param_dims", "model_data", "evaluate",
           "evaluate_transitions", "evaluate_draws", "slice_params", "mean_params",
           "sample_observables"]


def components(spec: ModelSpec):
    """``(emission, transitions)``: the component objects the spec names."""
    return EMISSION_COMPONENTS[spec.emission], TRANSITION_COMPONENTS[spec.transition_model]


def param_names(spec: ModelSpec) -> tuple[str, ...]:
    """Names of the posterior variables the evaluator reads (e.g. ``mu, sigma, P``)."""
    emission, transitions = components(spec)
    return emission.param_names(spec) + transitions.param_names(spec)


def param_dims(spec: ModelSpec) -> dict[str, tuple[str, ...]]:
    """Labelled dims of each parameter (without ``chain, draw``), by name."""
    emission, transitions = components(spec)
    return {**emission.param_dims(spec), **transitions.param_dims(spec)}


def model_data(spec: ModelSpec, features, covariates=None) -> dict[str, np.ndarray]:
    """The data arrays of the model by container name.

    Parameters
    ----------
    features : DataFrame or ndarray, shape (T, D)
        Standardised observables, NaN where missing (skipped in the likelihood).
    covariates : DataFrame or ndarray, shape (T, C), optional
        Standardised transition covariates, columns in ``spec.transition_covariates`` order;
        required (and finite) for a time-varying transition model.

    Returns
    -------
    dict of str to ndarray
        The emission component's containers (e.g. ``design``, ``offset``) and, for a
        time-varying transition model, ``z`` (T, C). Replacing these values (same names, any T)
        refits the same compiled model to another series.
    """
    emission, transitions = components(spec)
    y = np.asarray(features, dtype=np.float64)
    data = emission.data(spec, y)
    if transitions.data_names(spec):
        if covariates is None:
            raise ValueError(
                f"transition_model={spec.transition_model!r} needs the covariates "
                f"{list(spec.transition_covariates)}"
            )
        if isinstance(covariates, pd.DataFrame):
            missing = [c for c in spec.transition_covariates if c not in covariates.columns]
            if missing:
                raise ValueError(f"covariates {missing} are missing from the covariate data "
                                 f"(columns {list(covariates.columns)})")
            covariates = covariates[list(spec.transition_covariates)]
        z = np.asarray(covariates, dtype=np.float64)
        if z.shape != (y.shape[0], len(spec.transition_covariates)):
            raise ValueError(f"covariates must have shape (T, C) = "
                             f"{(y.shape[0], len(spec.transition_covariates))}, got {z.shape}")
        if not np.isfinite(z).all():
            raise ValueError("covariates must be finite on every day (a transition needs them)")
        data["z"] = z
    return data


def evaluate(spec: ModelSpec, params: dict, data: dict, *, xp=np):
    """``(log_init, log_trans, log_lik)`` of the model ``spec`` at ``params`` on ``data``.

    Parameters
    ----------
    spec : ModelSpec
    params : dict
        Parameter values by name (:func:`param_names`): NumPy arrays with any common leading
        draw dimensions, or PyMC/PyTensor variables.
    data : dict
        :func:`model_data` arrays, or the model's data containers.
    xp : module
        ``numpy`` (post-processing) or ``pytensor.tensor`` (the graph).

    Raises
    ------
    ValueError
        With NumPy inputs, naming a missing or invalid parameter (shapes, sigma <= 0, rows of
        P not summing to 1, non-finite values).

    Returns
    -------
    log_init : (K,)
        ``log Pr(stage_1 = k)``.
    log_trans : (..., K, K) or (..., T-1, K, K)
        ``log Pr(stage_t = j | stage_{t-1} = i)`` (time-varying: entry t-1 is the move into t).
    log_lik : (..., T, K)
        ``log p(y_t | stage_t = k)``.
    """
    emission, transitions = components(spec)
    if xp is np:
        missing = [n for n in param_names(spec) if n not in params]
        if missing:
            raise ValueError(f"the {spec.emission} / {spec.transition_model} model needs the "
                             f"parameters {missing}")
        emission.check(spec, params, data)
        transitions.check(spec, params)
    k = spec.n_stages
    log_init = np.full(k, -np.log(k)) if xp is np else xp.constant(np.full(k, -np.log(k)))
    log_trans = evaluate_transitions(spec, params, data.get("z"), xp=xp)
    log_lik = emission.log_lik(spec, params, data, xp=xp)
    return log_init, log_trans, log_lik


def evaluate_transitions(spec: ModelSpec, params: dict, z=None, *, xp=np):
    """``log Pr(stage_t = j | stage_{t-1} = i)`` alone (the transition part of :func:`evaluate`).

    Parameters
    ----------
    z : array (n + 1, C), optional
        Standardised covariates of n + 1 consecutive days (time-varying models only): row m
        drives the move into day m + 1.

    Returns
    -------
    array, shape (..., K, K) for a constant model, (..., n, K, K) for a time-varying one
    """
    _, transitions = components(spec)
    if spec.time_varying:
        if z is None:
            raise ValueError(f"transition_model={spec.transition_model!r} needs the covariates "
                             f"{list(spec.transition_covariates)}")
        return transitions.log_trans(spec, params, {"z": z}, xp=xp)
    return transitions.log_trans(spec, params, {}, xp=xp)


def evaluate_draws(spec: ModelSpec, params: dict, data: dict, lo: int, hi: int):
    """:func:`evaluate` for the posterior draws ``lo..hi-1`` of ``params`` (leading axis), as
    C-contiguous float64 NumPy arrays ready for the kernels: ``log_init`` (K,), ``log_trans``
    (hi-lo, K, K) or (hi-lo, T-1, K, K), ``log_lik`` (hi-lo, T, K)."""
    log_init, log_trans, log_lik = evaluate(spec, slice_params(params, lo, hi), data)
    return (np.ascontiguousarray(log_init, dtype=np.float64),
            np.ascontiguousarray(log_trans, dtype=np.float64),
            np.ascontiguousarray(log_lik, dtype=np.float64))


def slice_params(params: dict, lo: int, hi: int) -> dict:
    """The draws ``lo..hi-1`` (leading axis) of every parameter array."""
    return {name: value[lo:hi] for name, value in params.items()}


def mean_params(params: dict) -> dict:
    """Posterior means over the leading draw axis (for the Viterbi path under mean parameters).

    Transition matrices ``P`` are averaged entrywise (rows still sum to 1)."""
    return {name: np.asarray(value).mean(axis=0) for name, value in params.items()}


def sample_observables(spec: ModelSpec, params: dict, stages: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Observables (S, T, D) drawn from ``p(y_t | stage_t)`` along stage paths ``stages`` (S, T),
    one path per parameter draw (``params`` with leading dimension S), on the standardised
    scale the model is fitted on; every entry is drawn (the caller applies a missing pattern)."""
    emission, _ = components(spec)
    return emission.sample(spec, params, np.asarray(stages, dtype=np.int64), rng)
