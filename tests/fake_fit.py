"""A stressflow fit DataTree built from given parameter draws, without MCMC (test helper).

The tree is assembled by the same code as a real fit
(``stressflow.inference.fitting.assemble.assemble``)
from a hand-made "trace", so its layout (groups, dims, coordinates) is the real one, while the
posterior draws are whatever the test chooses (e.g. small perturbations of known parameters).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.models import dims


def fake_fit(prepared, mu, sigma, trans, *, n_chains=2, n_draws=10, jitter=0.02, seed=0,
             source="", spec=None, gamma=None, pointwise_loglik=False):
    """Fit-shaped DataTree whose posterior draws are ``mu``/``sigma``/``trans`` (K x D, K x D,
    K x K) plus independent N(0, jitter) noise on mu and log sigma, and P rows renormalised
    after a multiplicative jitter; ``n_chains x n_draws`` draws. With a ladder ``spec``,
    ``gamma`` (C,) are the transition coefficients (plus the same noise) and ``prepared`` must
    carry the covariates."""
    from stressflow.inference.fitting.assemble import assemble, data_hash
    from stressflow.inference.schema import SCHEMA_VERSION
    from stressflow.models.spec import ModelSpec

    rng = np.random.default_rng(seed)
    mu, sigma, trans = (np.asarray(a, dtype=np.float64) for a in (mu, sigma, trans))
    shape = (n_chains, n_draws)
    mu_d = mu + jitter * rng.standard_normal(shape + mu.shape)
    sigma_d = sigma * np.exp(jitter * rng.standard_normal(shape + sigma.shape))
    p_d = trans * np.exp(jitter * rng.standard_normal(shape + trans.shape))
    p_d /= p_d.sum(axis=-1, keepdims=True)
    spec = spec or ModelSpec.base()
    stages = list(spec.stage_names)
    coords = {dims.CHAIN: np.arange(n_chains), dims.DRAW: np.arange(n_draws),
              dims.STAGE: stages, dims.FEATURE: list(prepared.features.columns),
              dims.STAGE_FROM: stages, dims.STAGE_TO: stages}
    posterior = xr.Dataset(
        {"mu": ((dims.CHAIN, dims.DRAW, dims.STAGE, dims.FEATURE), mu_d),
         "sigma": ((dims.CHAIN, dims.DRAW, dims.STAGE, dims.FEATURE), sigma_d),
         "P": ((dims.CHAIN, dims.DRAW, dims.STAGE_FROM, dims.STAGE_TO), p_d)},
        coords=coords,
    )
    if spec.transition_model == "ladder":
        g = np.asarray(gamma, dtype=np.float64)
        posterior["gamma"] = xr.DataArray(
            g + jitter * rng.standard_normal(shape + g.shape),
            dims=(dims.CHAIN, dims.DRAW, dims.COVARIATE),
            coords={dims.COVARIATE: list(spec.transition_covariates)})
    elif spec.time_varying:
        raise ValueError("fake_fit makes constant or ladder fits only")
    stats = xr.Dataset({"diverging": ((dims.CHAIN, dims.DRAW), np.zeros(shape, dtype=bool))},
                       coords={dims.CHAIN: coords[dims.CHAIN], dims.DRAW: coords[dims.DRAW]})
    trace = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    tree = assemble(trace, prepared, spec, quantiles=dims.DEFAULT_QUANTILES,
                     max_quantile_draws=1000, store_draws=False,
                    pointwise_loglik=pointwise_loglik)
    feats = prepared.features
    tree.attrs.update({
        "schema_version": SCHEMA_VERSION,
        "data_hash": data_hash(feats),
        "start": str(feats.index[0].date()),
        "end": str(feats.index[-1].date()),
        "n_days": int(len(feats)),
        "model_spec": json.dumps(spec.to_dict()),
        "transform": json.dumps(prepared.transform.to_dict()),
        "source": source,
        "fit_options": json.dumps({"chains": n_chains, "draws": n_draws, "sampler": "fake"}),
    })
    return tree


def with_close(prepared, close):
    """``prepared`` with its ``prices.close`` replaced by ``close`` (array of len T)."""
    index = pd.DatetimeIndex(prepared.features.index, name="date")
    prices = pd.DataFrame({"close": np.asarray(close, dtype=np.float64)}, index=index)
    return dataclasses.replace(prepared, prices=prices)
