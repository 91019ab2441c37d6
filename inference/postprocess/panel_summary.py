"""Text summary of a panel fit: convergence, each asset's top stage, spillover.

The one-asset summary is :func:`stressflow.inference.postprocess.summaries.summary`.
"""

from __future__ import annotations

import json
import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from stressflow.models import dims
from stressflow.models.panel.spec import PanelSpec

__all__ = ["convergence", "asset_table", "spillover_table", "panel_summary"]


def _spec(fit: xr.DataTree) -> PanelSpec:
    return PanelSpec.from_dict(json.loads(fit.attrs["panel_spec"]))


def convergence(fit: xr.DataTree) -> dict[str, float]:
    """``max_rhat`` (rank-normalised split R-hat) and ``min_ess`` (bulk) over every element
    of every posterior variable that varies (the zero diagonal of ``spillover`` is left out),
    and ``divergences`` (count over all chains)."""
    post = fit["posterior"].to_dataset()
    varies = post.std((dims.CHAIN, dims.DRAW)) > 0
    with warnings.catch_warnings():  # the constant elements divide 0 by 0 inside arviz
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(post).where(varies)
        ess = az.ess(post).where(varies)
    out = {"max_rhat": max(float(rhat[v].max()) for v in rhat.data_vars),
           "min_ess": min(float(ess[v].min()) for v in ess.data_vars),
           "divergences": np.nan}
    if "sample_stats" in fit.children and "diverging" in fit["sample_stats"]:
        out["divergences"] = int(fit["sample_stats"]["diverging"].values.sum())
    return out


def asset_table(fit: xr.DataTree) -> pd.DataFrame:
    """Per asset: ``share_top`` (share of days with ``Pr(s_{a,t} = top | y_1..y_T) > 0.5``),
    ``mean_top`` (mean of that probability over the days) and ``duration_top`` (posterior
    median of ``1 / (1 - P[a, top, top])``, the expected stay in the top stage with no other
    asset stressed, in trading days; the spillover lengthens it when others are)."""
    spec = _spec(fit)
    top = spec.stage_names[-1]
    smoothed = fit["stages"]["smoothed"].sel({dims.STAGE: top})
    rows = {}
    stay = fit["posterior"]["P"]
    for asset in spec.assets:
        p = smoothed.sel({dims.ASSET: asset}).values
        if dims.ASSET in stay.dims:
            p_stay = stay.sel({dims.ASSET: asset}).values[..., -1, -1]
        else:
            p_stay = stay.values[..., -1, -1]
        rows[asset] = {"share_top": float((p > 0.5).mean()), "mean_top": float(p.mean()),
                       "duration_top": float(np.median(1.0 / (1.0 - p_stay)))}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(dims.ASSET)


def spillover_table(fit: xr.DataTree, interval: float = 0.9) -> pd.DataFrame:
    """Spillover coefficients (rows ``asset``: the asset whose move into its top stage is
    tilted, columns ``asset_from``), posterior ``median`` and the ``interval`` bounds ``lo``,
    ``hi``, one row per ordered pair; empty without spillover coupling."""
    if "spillover" not in fit["posterior"]:
        return pd.DataFrame(columns=["median", "lo", "hi"])
    tail = (1.0 - interval) / 2.0
    q = fit["posterior"]["spillover"].quantile([tail, 0.5, 1.0 - tail], (dims.CHAIN, dims.DRAW))
    frame = q.to_dataframe()["spillover"].unstack("quantile")
    frame.columns = ["lo", "median", "hi"]
    frame = frame[[a != b for a, b in frame.index]]
    return frame[["median", "lo", "hi"]]


def panel_summary(fit: xr.DataTree) -> str:
    """A few lines: the panel, the convergence figures, :func:`asset_table`,
    :func:`spillover_table` and the timings."""
    spec = _spec(fit)
    conv = convergence(fit)
    post = fit["posterior"]
    lines = [
        f"panel fit: assets {list(spec.assets)}, coupling {spec.coupling}, {spec.n_stages} "
        f"stages per asset ({spec.n_joint} joint states), "
        f"{fit['stages'].sizes[dims.TIME]} days {fit.attrs.get('data_start')} .. "
        f"{fit.attrs.get('data_end')}",
        f"{post.sizes[dims.CHAIN]} chains x {post.sizes[dims.DRAW]} draws: max R-hat "
        f"{conv['max_rhat']:.3f}, min bulk ESS {conv['min_ess']:.0f}, divergences "
        f"{conv['divergences']}",
    ]
    if conv["max_rhat"] > 1.01:
        lines.append("WARNING: max R-hat > 1.01, the chains have not converged; do not read "
                     "the probabilities below")
    top = spec.stage_names[-1]
    lines += ["", f"top stage ({top}) per asset: share of days with Pr > 0.5, mean Pr, "
              "expected stay (days)", asset_table(fit).round(3).to_string()]
    spill = spillover_table(fit)
    if len(spill):
        lines += ["", "spillover (log-odds added to the asset's move into its top stage when "
                  "asset_from was in its top stage the day before): median [5%, 95%]",
                  spill.round(2).to_string()]
    if "timings" in fit.attrs:
        lines += ["", f"timings (s): {fit.attrs['timings']}"]
    return "\n".join(lines)
