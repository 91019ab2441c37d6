"""Joint stage paths drawn from the posterior by forward-filtering backward-sampling (FFBS).

The per-day probabilities in a fit (``Pr(stage_t = k | y_1..y_T)``) are marginals: they cannot
answer questions about several days at once, such as "were at least half of the days of this
selloff in forced flow?". Whole paths can. For each posterior draw ``theta^(s)`` of
``(mu, sigma, P, nu)`` this module draws ``M`` paths from
``Pr(stage_1..stage_T | y_1..y_T, theta^(s))`` with
:func:`stressflow.models.numerics.kernels.sample_paths`;
pooled over draws, the paths are draws from ``Pr(stage_1..stage_T | y_1..y_T)`` with the
parameter uncertainty integrated out. The probability of any event ``E`` about the stage path
is then estimated by the share of paths in ``E``, and the per-draw shares give its spread across
parameter draws.

Two layers:

- :func:`stage_paths`: plain arrays (draws of the parameters, ``y0``/``mask``) -> ``int8``
  paths of shape (S * M, T);
- :func:`sample_stage_paths`: a fit ``DataTree`` -> labelled ``xarray.DataArray``
  (``sample``, ``time``) recording which chain and draw each path came from.

Randomness comes from ``numpy.random.default_rng(seed)`` only: the same seed and inputs give
the same paths.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from stressflow.inference.postprocess.stages import draw_logliks, quantile_draw_index
from stressflow.models import dims
from stressflow.models.emissions import masked_observations
from stressflow.models.numerics import kernels

__all__ = ["SAMPLE", "stage_paths", "sample_stage_paths", "fit_parameter_draws"]

#: Dimension of the pooled path samples (one path per entry), from :mod:`stressflow.models.dims`.
SAMPLE = dims.SAMPLE


def _check_draws(y0, mask, mu, sigma, trans, nu):
    if y0.ndim != 2 or mask.shape != y0.shape:
        raise ValueError(
            f"y0 and mask must both have shape (T, D); got {y0.shape} and {mask.shape}"
        )
    n_t, n_feat = y0.shape
    if mu.ndim != 3 or sigma.shape != mu.shape:
        raise ValueError(
            f"mu and sigma must both have shape (S, K, D); got {mu.shape} and {sigma.shape}"
        )
    n_draws, n_stages, d = mu.shape
    if d != n_feat:
        raise ValueError(f"mu has {d} features but y0 has {n_feat}")
    if trans.shape != (n_draws, n_stages, n_stages):
        raise ValueError(
            f"trans must have shape (S, K, K) = {(n_draws, n_stages, n_stages)}, got {trans.shape}"
        )
    if nu is not None and nu.shape != (n_draws, n_stages):
        raise ValueError(f"nu must have shape (S, K) = {(n_draws, n_stages)}, got {nu.shape}")
    if n_t < 1:
        raise ValueError("no days to sample stage paths for (T = 0)")
    if not (np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
        raise ValueError("sigma must be finite and > 0 in every draw")
    if np.any(trans < 0) or not np.allclose(trans.sum(axis=-1), 1.0, atol=1e-6):
        raise ValueError("every row of every transition matrix P must be >= 0 and sum to 1")


def stage_paths(
    y0: np.ndarray,
    mask: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    trans: np.ndarray,
    nu: np.ndarray | None = None,
    *,
    paths_per_draw: int = 1,
    seed: int | np.random.Generator = 0,
    log_init: np.ndarray | None = None,
    chunk: int = 32,
) -> np.ndarray:
    """Draw whole stage paths from ``Pr(stage_1..stage_T | y_1..y_T)`` by FFBS, draw by draw.

    For every parameter draw ``s`` (row of ``mu``, ``sigma``, ``trans``, ``nu``) the emission
    log-likelihoods ``log p(y_t | stage_t = k, theta^(s))`` are formed with
    :func:`~stressflow.models.emissions.emission_loglik` and ``paths_per_draw`` independent
    paths are drawn from ``Pr(stage_1..stage_T | y_1..y_T, theta^(s))`` with
    :func:`~stressflow.models.numerics.kernels.sample_paths`. If the parameter draws are draws from
    the
    posterior, the pooled rows are draws from ``Pr(stage_1..stage_T | y_1..y_T)``.

    Parameters
    ----------
    y0, mask : ndarray, shape (T, D)
        Observations with missing values set to 0 and the 0/1 observation mask
        (:func:`~stressflow.models.emissions.masked_observations`).
    mu, sigma : ndarray, shape (S, K, D)
        Per-draw stage means and scales of the (standardised) observables.
    trans : ndarray, shape (S, K, K)
        Per-draw transition matrices ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``.
    nu : ndarray, shape (S, K), optional
        Student-t degrees of freedom; ``None`` for Gaussian emissions.
    paths_per_draw : int
        ``M``, paths drawn per parameter draw.
    seed : int or numpy.random.Generator
        Seed of ``numpy.random.default_rng``; the same seed gives the same paths.
    log_init : ndarray, shape (K,), optional
        ``log Pr(stage_1 = k)``; default uniform ``-log K`` (as in the fitted model).
    chunk : int
        Draws whose emission log-likelihoods are formed at once (memory ``chunk * T * K``).

    Returns
    -------
    ndarray of int8, shape (S * M, T)
        Stage indices (into :data:`stressflow.models.dims.STAGES`); row ``s * M + m`` is path
        ``m`` of draw ``s``.

    Raises
    ------
    ValueError
        On inconsistent shapes, invalid parameters, ``paths_per_draw < 1``, or observations
        that are impossible under some draw.
    """
    y0 = np.asarray(y0, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    nu = None if nu is None else np.asarray(nu, dtype=np.float64)
    _check_draws(y0, mask, mu, sigma, trans, nu)
    if not isinstance(paths_per_draw, int | np.integer) or paths_per_draw < 1:
        raise ValueError(f"paths_per_draw must be an integer >= 1, got {paths_per_draw!r}")
    n_draws, n_stages, _ = mu.shape
    n_t = y0.shape[0]
    if log_init is None:
        log_init = np.full(n_stages, -np.log(n_stages))
    log_init = np.ascontiguousarray(log_init, dtype=np.float64)
    if log_init.shape != (n_stages,):
        raise ValueError(f"log_init must have shape ({n_stages},), got {log_init.shape}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    with np.errstate(divide="ignore"):
        log_trans = np.log(trans)
    out = np.empty((n_draws * paths_per_draw, n_t), dtype=np.int8)
    for s, ll in draw_logliks(y0, mask, mu, sigma, nu, chunk=chunk):
        try:
            paths = kernels.sample_paths(log_init, log_trans[s], ll, paths_per_draw, rng)
        except ValueError as exc:
            raise ValueError(f"parameter draw {s}: {exc}") from None
        out[s * paths_per_draw:(s + 1) * paths_per_draw] = paths
    return out


def fit_parameter_draws(fit: xr.DataTree) -> dict[str, np.ndarray | None]:
    """The posterior draws of a fit as plain arrays, chains and draws flattened.

    Returns a dict with ``mu``, ``sigma`` (S, K, D) in the feature order of
    ``observed_data.features``, ``P`` (S, K, K), ``nu`` (S, K) or ``None``, ``chain`` and
    ``draw`` (S,) labels of each flattened draw, and ``y0``/``mask`` (T, D) from the observed
    features.

    Raises
    ------
    ValueError
        If the fit lacks the ``posterior`` or ``observed_data`` group or a parameter.
    """
    for group in ("posterior", "observed_data"):
        if group not in fit.children:
            raise ValueError(f"the fit has no '{group}' group: is it a stressflow fit?")
    post = fit["posterior"].to_dataset()
    for name in ("mu", "sigma", "P"):
        if name not in post:
            raise ValueError(f"the fit's posterior has no '{name}' variable")
    feats = fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE)
    feature_names = [str(f) for f in feats[dims.FEATURE].values]
    stacked = post.stack(_flat=(dims.CHAIN, dims.DRAW))

    def flat(name, tail):
        da = stacked[name]
        if dims.FEATURE in da.dims and dims.FEATURE in da.coords:
            da = da.sel({dims.FEATURE: feature_names})
        return np.ascontiguousarray(da.transpose("_flat", *tail).values, dtype=np.float64)

    y0, mask = masked_observations(feats.values)
    return {
        "mu": flat("mu", (dims.STAGE, dims.FEATURE)),
        "sigma": flat("sigma", (dims.STAGE, dims.FEATURE)),
        "P": flat("P", (dims.STAGE_FROM, dims.STAGE_TO)),
        "nu": flat("nu", (dims.STAGE,)) if "nu" in post else None,
        "chain": stacked[dims.CHAIN].values.astype(np.int64),
        "draw": stacked[dims.DRAW].values.astype(np.int64),
        "y0": y0,
        "mask": mask,
    }


def sample_stage_paths(
    fit: xr.DataTree,
    *,
    n_draws: int | None = 200,
    paths_per_draw: int = 10,
    seed: int = 0,
) -> xr.DataArray:
    """Joint stage paths from ``Pr(stage_1..stage_T | y_1..y_T)`` for a fit (labelled layer).

    Parameters
    ----------
    fit : xarray.DataTree
        A fit from :func:`stressflow.inference.fitting.fit` (or
        :func:`~stressflow.inference.load_fit`).
    n_draws : int or None
        Use at most this many posterior draws, evenly thinned over the flattened
        (chain, draw) sequence; ``None`` uses every draw.
    paths_per_draw : int
        Paths drawn per parameter draw (``M``).
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same paths.

    Returns
    -------
    xarray.DataArray of int8, dims (``sample``, ``time``), shape (S * M, T)
        Stage indices into ``attrs["stages"]`` (= :data:`stressflow.models.dims.STAGES`). Each
        row is one draw from ``Pr(stage_1..stage_T | y_1..y_T)``; coordinates ``chain`` and
        ``draw`` along ``sample`` name the posterior draw it was sampled under, so per-draw
        probabilities ``Pr(E | y_1..y_T, theta^(s))`` are the means over samples sharing a
        (chain, draw).
    """
    if n_draws is not None and (not isinstance(n_draws, int | np.integer) or n_draws < 1):
        raise ValueError(f"n_draws must be an integer >= 1 or None, got {n_draws!r}")
    p = fit_parameter_draws(fit)
    total = p["mu"].shape[0]
    idx = np.arange(total) if n_draws is None else quantile_draw_index(total, int(n_draws))
    paths = stage_paths(
        p["y0"], p["mask"], p["mu"][idx], p["sigma"][idx], p["P"][idx],
        None if p["nu"] is None else p["nu"][idx],
        paths_per_draw=paths_per_draw, seed=seed,
    )
    src = np.repeat(idx, paths_per_draw)
    time = fit["observed_data"][dims.TIME].values
    return xr.DataArray(
        paths,
        dims=(SAMPLE, dims.TIME),
        coords={
            dims.TIME: time,
            dims.CHAIN: (SAMPLE, p["chain"][src]),
            dims.DRAW: (SAMPLE, p["draw"][src]),
        },
        name="stage_path",
        attrs={
            "long_name": "draws from Pr(stage_1..stage_T | y_1..y_T) by FFBS, one per sample",
            "stages": json.dumps(list(dims.STAGES)),
            "n_parameter_draws": int(len(idx)),
            "paths_per_draw": int(paths_per_draw),
            "seed": int(seed),
            "method": (
                "forward-filtering backward-sampling under each of n_parameter_draws evenly "
                "thinned posterior draws (coords chain, draw), paths_per_draw paths each"
            ),
        },
    )
