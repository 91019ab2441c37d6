"""The panel stage model as a PyMC model (formulas in :mod:`stressflow.models.panel.spec`).

Priors (standardised scale): each asset's stage means of its ordering channel ``mu_order``
(asset, stage) ~ Normal(0, mu_prior_sd), ordered across stages; every other channel's stage
means ``mu_other`` (stage, channel_other) ~ Normal(0, mu_prior_sd); ``sigma`` (stage, channel)
~ Gamma(2, 2); each row of ``P`` ~ Dirichlet(1 + stickiness on the diagonal);
``spillover_pair`` (asset_pair) ~ Normal(0, spillover_prior_sd), placed off the diagonal of the
deterministic ``spillover`` (asset, asset_from). The joint states are summed out by the forward
algorithm (:func:`stressflow.models.numerics.ops.hmm_logp`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from stressflow.models import dims
from stressflow.models.numerics.ops import hmm_logp
from stressflow.models.panel.evaluate import evaluate, panel_data
from stressflow.models.panel.spec import PanelSpec

__all__ = ["build_panel_model", "other_channels"]


def other_channels(spec: PanelSpec) -> list[str]:
    """The channels other than the assets' ordering channels, in channel order."""
    return [c for c in spec.channels if c not in spec.order_channels]


def build_panel_model(features: pd.DataFrame, spec: PanelSpec) -> pm.Model:
    """PyMC model of a panel's standardised channels with the joint stages summed out.

    Parameters
    ----------
    features : DataFrame, shape (T, C)
        Standardised channels (columns ``spec.channels``), NaN where missing.
    spec : PanelSpec

    Returns
    -------
    pymc.Model
        Variables ``mu`` (stage, channel), ``sigma`` (stage, channel), ``P`` (asset,
        stage_from, stage_to; with a shared stage (stage_from, stage_to)) with ``P[a, i, j] =
        Pr(s_{a,t} = j | s_{a,t-1} = i)`` before the spillover tilt, and ``spillover`` (asset,
        asset_from); potential ``hmm_loglik`` = ``log p(y_1..y_T | theta)``.
    """
    if list(features.columns) != list(spec.channels):
        raise ValueError(f"features columns {list(features.columns)} differ from the spec's "
                         f"channels {list(spec.channels)}")
    k, a = spec.n_stages, spec.n_assets
    stages = list(spec.stage_names)
    others = other_channels(spec)
    coords = {dims.STAGE: stages, dims.STAGE_FROM: stages, dims.STAGE_TO: stages,
              dims.CHANNEL: list(spec.channels), dims.CHANNEL_OTHER: others,
              dims.ASSET: list(spec.assets), dims.ASSET_FROM: list(spec.assets),
              dims.TIME: pd.DatetimeIndex(features.index)}
    if spec.coupling == "spillover":
        coords[dims.ASSET_PAIR] = spec.pair_names
    conc = 1.0 + spec.stickiness * np.eye(k)
    with pm.Model(coords=coords) as model:
        mu_order = pm.Normal("mu_order", 0.0, spec.mu_prior_sd, dims=(dims.ASSET, dims.STAGE),
                             transform=pm.distributions.transforms.ordered,
                             initval=np.tile(np.linspace(-1.0, 1.0, k), (a, 1)))
        mu_other = pm.Normal("mu_other", 0.0, spec.mu_prior_sd,
                             dims=(dims.STAGE, dims.CHANNEL_OTHER))
        # columns: the ordering channels (asset order), then the others; put back in order
        position = [spec.order_channels.index(c) if c in spec.order_channels
                    else a + others.index(c) for c in spec.channels]
        mu = pm.Deterministic("mu", pt.concatenate([mu_order.T, mu_other], axis=1)[:, position],
                              dims=(dims.STAGE, dims.CHANNEL))
        sigma = pm.Gamma("sigma", alpha=2.0, beta=2.0, dims=(dims.STAGE, dims.CHANNEL))
        if spec.coupling == "shared":
            P = pm.Dirichlet("P", a=conc, dims=(dims.STAGE_FROM, dims.STAGE_TO))
        else:
            P = pm.Dirichlet("P", a=np.broadcast_to(conc, (a, k, k)),
                             dims=(dims.ASSET, dims.STAGE_FROM, dims.STAGE_TO))
        params = {"mu": mu, "sigma": sigma, "P": P}
        if spec.coupling == "spillover":
            pair = pm.Normal("spillover_pair", 0.0, spec.spillover_prior_sd, dims=dims.ASSET_PAIR)
            to, frm = (np.array(x, dtype=np.int64) for x in zip(*spec.asset_pairs, strict=True))
            params["spillover"] = pm.Deterministic(
                "spillover", pt.set_subtensor(pt.zeros((a, a))[to, frm], pair),
                dims=(dims.ASSET, dims.ASSET_FROM))
        data = {name: pm.Data(name, value)
                for name, value in panel_data(spec, features).items()}
        log_init, log_trans, log_lik = evaluate(spec, params, data, xp=pt)
        pm.Potential("hmm_loglik", hmm_logp(log_init, log_trans, log_lik))
    return model
