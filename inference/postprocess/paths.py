"""Joint stage paths drawn from the posterior by forward-filtering backward-sampling (FFBS).

The per-day probabilities in a fit (``Pr(stage_t = k | y_1..y_T)``) are marginals: they cannot
answer questions about several days at once, such as "were at least half of the days of this
selloff in forced flow?". Whole paths can. For each posterior draw ``theta^(s)`` of
the model's parameters this module draws ``M`` paths from
``Pr(stage_1..stage_T | y_1..y_T, theta^(s))`` with
:func:`stressflow.models.numerics.kernels.sample_paths`;
pooled over draws, the paths are draws from ``Pr(stage_1..stage_T | y_1..y_T)`` with the
parameter uncertainty integrated out. The probability of any event ``E`` about the stage path
is then estimated by the share of paths in ``E``, and the per-draw shares give its spread across
parameter draws.

Two layers:

- :func:`stage_paths`: plain arrays (the kernel inputs of each draw, from the model's one
  evaluator :func:`stressflow.models.evaluate.evaluate_draws`) -> ``int8`` paths of shape
  (S * M, T);
- :func:`sample_stage_paths`: a fit ``DataTree`` -> labelled ``xarray.DataArray``
  (``sample``, ``time``) recording which chain and draw each path came from.

Randomness comes from ``numpy.random.default_rng(seed)`` only: the same seed and inputs give
the same paths.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.postprocess.stages import quantile_draw_index
from stressflow.models import dims
from stressflow.models.evaluate import evaluate_draws
from stressflow.models.messages import require_int
from stressflow.models.numerics import kernels

__all__ = ["SAMPLE", "stage_paths", "sample_stage_paths"]

#: Dimension of the pooled path samples (one path per entry), from :mod:`stressflow.models.dims`.
SAMPLE = dims.SAMPLE


def stage_paths(
    terms,
    n_draws: int,
    *,
    paths_per_draw: int = 1,
    seed: int | np.random.Generator = 0,
    chunk: int = 32,
) -> np.ndarray:
    """Draw whole stage paths from ``Pr(stage_1..stage_T | y_1..y_T)`` by FFBS, draw by draw.

    For every parameter draw ``s``, ``paths_per_draw`` independent paths are drawn from
    ``Pr(stage_1..stage_T | y_1..y_T, theta^(s))`` with
    :func:`~stressflow.models.numerics.kernels.sample_paths`. If the parameter draws are draws
    from the posterior, the pooled rows are draws from ``Pr(stage_1..stage_T | y_1..y_T)``.

    Parameters
    ----------
    terms : callable
        ``terms(lo, hi) -> (log_init (K,), log_trans, log_lik (hi-lo, T, K))`` for the draws
        ``lo..hi-1``, ``log_trans`` of shape (hi-lo, K, K) or (hi-lo, T-1, K, K)
        (:func:`stressflow.models.evaluate.evaluate_draws`).
    n_draws : int
        Number of parameter draws S.
    paths_per_draw : int
        ``M``, paths drawn per parameter draw.
    seed : int or numpy.random.Generator
        Seed of ``numpy.random.default_rng``; the same seed gives the same paths.
    chunk : int
        Draws evaluated at once (memory ``chunk * T * K``).

    Returns
    -------
    ndarray of int8, shape (S * M, T)
        Stage indices (into the model's stage names, ``ModelSpec.stage_names``); row
        ``s * M + m`` is path
        ``m`` of draw ``s``.

    Raises
    ------
    ValueError
        On ``paths_per_draw < 1``, invalid kernel inputs (the kernels' message, with the draw),
        or observations that are impossible under some draw.
    """
    paths_per_draw = require_int("paths_per_draw", paths_per_draw, 1)
    n_draws = require_int("n_draws", n_draws, 1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out = None
    for lo in range(0, n_draws, chunk):
        hi = min(lo + chunk, n_draws)
        log_init, log_trans, log_lik = terms(lo, hi)
        if out is None:
            if log_lik.shape[1] < 1:
                raise ValueError("no days to sample stage paths for (T = 0)")
            out = np.empty((n_draws * paths_per_draw, log_lik.shape[1]), dtype=np.int8)
        for s in range(lo, hi):
            try:
                paths = kernels.sample_paths(log_init, log_trans[s - lo], log_lik[s - lo],
                                             paths_per_draw, rng)
            except ValueError as exc:
                raise ValueError(f"parameter draw {s}: {exc}") from None
            out[s * paths_per_draw:(s + 1) * paths_per_draw] = paths
    return out


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
        Stage indices into ``attrs["stages"]`` (the fit's stage names in model order). Each
        row is one draw from ``Pr(stage_1..stage_T | y_1..y_T)``; coordinates ``chain`` and
        ``draw`` along ``sample`` name the posterior draw it was sampled under, so per-draw
        probabilities ``Pr(E | y_1..y_T, theta^(s))`` are the means over samples sharing a
        (chain, draw).
    """
    n_draws = require_int("n_draws", n_draws, 1, allow_none=True)
    schema.require_fit(fit, needs={"observed_data": ("features",)}, purpose="path sampling")
    spec = schema.read_spec(fit)
    params, shape = schema.posterior_params(fit["posterior"], spec)
    total = shape[0] * shape[1]
    idx = np.arange(total) if n_draws is None else quantile_draw_index(total, int(n_draws))
    params = {name: value[idx] for name, value in params.items()}
    data = schema.model_arrays(fit, spec)
    paths = stage_paths(
        lambda lo, hi: evaluate_draws(spec, params, data, lo, hi), len(idx),
        paths_per_draw=paths_per_draw, seed=seed,
    )
    chain = schema.chain_of_draw(shape)
    draw = np.tile(fit["posterior"][dims.DRAW].values.astype(np.int64), shape[0])
    src = np.repeat(idx, paths_per_draw)
    time = fit["observed_data"][dims.TIME].values
    return xr.DataArray(
        paths,
        dims=(SAMPLE, dims.TIME),
        coords={
            dims.TIME: time,
            dims.CHAIN: (SAMPLE, fit["posterior"][dims.CHAIN].values[chain[src]]),
            dims.DRAW: (SAMPLE, draw[src]),
        },
        name="stage_path",
        attrs={
            "long_name": "draws from Pr(stage_1..stage_T | y_1..y_T) by FFBS, one per sample",
            "stages": json.dumps(list(spec.stage_names)),
            "n_parameter_draws": int(len(idx)),
            "paths_per_draw": int(paths_per_draw),
            "seed": int(seed),
            "method": (
                "forward-filtering backward-sampling under each of n_parameter_draws evenly "
                "thinned posterior draws (coords chain, draw), paths_per_draw paths each"
            ),
        },
    )
