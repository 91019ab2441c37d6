"""Thin labelled views of a fit (the pandas/xarray layer over the stored arrays).

Every function takes the ``xarray.DataTree`` returned by :func:`stressflow.inference.fitting.fit`
(or read back with :func:`load_fit`) and returns pandas objects indexed by date and stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.models import dims

__all__ = [
    "save_fit",
    "load_fit",
    "stage_probabilities",
    "expected_durations",
    "transition_matrix",
    "stage_means",
    "stage_shares",
    "top_days",
    "summary",
]


def save_fit(result: xr.DataTree, path: str | Path) -> Path:
    """Write a fit to a netCDF file (HDF5 via h5netcdf)."""
    path = Path(path)
    result.to_netcdf(path, engine="h5netcdf")
    return path


def load_fit(path: str | Path) -> xr.DataTree:
    """Read a fit written by :func:`save_fit` (loaded into memory, file closed).

    The stored arrays come back bit for bit. Raises ``ValueError`` with a message saying what
    to do if the file is not a stressflow fit (not netCDF/HDF5, or no ``schema_version`` /
    ``stages`` group) or was written with a schema version this stressflow cannot read
    (:data:`stressflow.inference.fitting.fit.READABLE_SCHEMA_VERSIONS`).
    """
    from stressflow.inference.fitting.fit import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no fit file at {path}")
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            result = tree.load()
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a stressflow fit: it cannot be read as netCDF/HDF5 ({exc})"
        ) from exc
    if "schema_version" not in result.attrs or "stages" not in result.children:
        raise ValueError(f"{path} is not a stressflow fit (no schema_version / stages group)")
    try:
        schema = int(np.asarray(result.attrs["schema_version"]).item())
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{path}: schema_version {result.attrs['schema_version']!r} is not an integer; "
            "not a stressflow fit"
        ) from exc
    if schema not in READABLE_SCHEMA_VERSIONS:
        written = result.attrs.get("stressflow_version", "an unknown version")
        raise ValueError(
            f"{path} was written with fit schema version {schema} (stressflow {written}); this "
            f"stressflow writes schema {SCHEMA_VERSION} and reads versions "
            f"{list(READABLE_SCHEMA_VERSIONS)}: read it with the stressflow version that wrote "
            "it, or refit"
        )
    return result


def stage_probabilities(result: xr.DataTree, kind: str = "smoothed") -> pd.DataFrame:
    """Posterior stage probabilities per day, columns = stages.

    ``kind="smoothed"``: ``Pr(stage_t = k | y_1..y_T)``, which uses the whole sample (future
    data included). ``kind="filtered"``: ``Pr(stage_t = k | y_1..y_t)``, which uses only data
    up to and including day t. Both are averaged over the parameter posterior.
    """
    if kind not in ("smoothed", "filtered"):
        raise ValueError(f"kind must be 'smoothed' or 'filtered', got {kind!r}")
    return result["stages"][kind].to_pandas()


def expected_durations(result: xr.DataTree) -> pd.DataFrame:
    """Expected stage duration ``1 / (1 - P[k, k])`` in trading days: posterior mean and
    5%/95% quantiles, one row per stage."""
    dur = result["posterior"]["expected_duration"]
    return pd.DataFrame(
        {
            "mean": dur.mean((dims.CHAIN, dims.DRAW)).to_pandas(),
            "q05": dur.quantile(0.05, (dims.CHAIN, dims.DRAW)).drop_vars("quantile").to_pandas(),
            "q95": dur.quantile(0.95, (dims.CHAIN, dims.DRAW)).drop_vars("quantile").to_pandas(),
        }
    )


def transition_matrix(result: xr.DataTree, stat: str = "mean") -> pd.DataFrame:
    """Posterior ``mean`` (or a quantile such as ``"q05"``) of
    ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``; rows = stage_from, columns = stage_to."""
    trans = result["posterior"]["P"]
    if stat == "mean":
        out = trans.mean((dims.CHAIN, dims.DRAW))
    elif stat.startswith("q"):
        out = trans.quantile(float(stat[1:]) / 100, (dims.CHAIN, dims.DRAW)).drop_vars(
            "quantile"
        )
    else:
        raise ValueError(f"stat must be 'mean' or 'qNN', got {stat!r}")
    return out.to_pandas()


def stage_means(result: xr.DataTree, raw: bool = False) -> pd.DataFrame:
    """Posterior mean of each stage's emission mean, rows = stages, columns = features.

    With ``raw=True`` the means are mapped back from standardised units to the raw (log)
    observables with the stored transform: ``raw = center + scale * mu``.
    """
    mu = result["posterior"]["mu"].mean((dims.CHAIN, dims.DRAW)).to_pandas()
    if raw:
        tr = json.loads(result.attrs["transform"])
        center = pd.Series(tr["center"], index=tr["features"])
        scale = pd.Series(tr["scale"], index=tr["features"])
        mu = mu * scale[mu.columns] + center[mu.columns]
    return mu


def stage_shares(result: xr.DataTree) -> pd.Series:
    """Expected share of days in each stage, ``mean_t Pr(stage_t = k | y_1..y_T)``."""
    return result["stages"]["smoothed"].mean(dims.TIME).to_pandas()


def top_days(result: xr.DataTree, stage: str = "forced_flow", n: int = 10) -> pd.DataFrame:
    """The ``n`` days with the highest ``Pr(stage_t = stage | y_1..y_T)``, with that
    probability's 5%-95% interval across draws and the filtered probability beside it."""
    if stage not in dims.STAGES:
        raise ValueError(f"stage must be one of {dims.STAGES}, got {stage!r}")
    st = result["stages"]
    sm = st["smoothed"].sel({dims.STAGE: stage}).to_pandas()
    q = st["smoothed_quantile"].sel({dims.STAGE: stage})
    qs = [float(x) for x in q[dims.QUANTILE].values]
    table = pd.DataFrame({"smoothed": sm})
    if qs:
        table[f"q{round(100 * qs[0]):02d}"] = q.isel({dims.QUANTILE: 0}).to_pandas()
        table[f"q{round(100 * qs[-1]):02d}"] = q.isel({dims.QUANTILE: -1}).to_pandas()
    table["filtered"] = st["filtered"].sel({dims.STAGE: stage}).to_pandas()
    close = result["observed_data"]["close"].to_pandas()
    table["return"] = np.log(close).diff()
    return table.sort_values("smoothed", ascending=False).head(n)


def summary(result: xr.DataTree, n_top: int = 10) -> str:
    """A plain-text report: stage means, durations, shares, diagnostics and top days."""
    from stressflow.inference.postprocess.diagnostics import check_fit

    diag = check_fit(result, warn=False)
    opts = json.loads(result.attrs.get("fit_options", "{}"))
    spec = json.loads(result.attrs.get("model_spec", "{}"))
    lines = [
        f"stressflow fit: {result.attrs.get('source', '')} "
        f"{result.attrs['start']} .. {result.attrs['end']} ({result.attrs['n_days']} days)",
        f"model: emission={spec.get('emission')}, transitions={spec.get('transitions')}; "
        f"sampler={opts.get('sampler')}, {diag.n_chains} chains x {diag.n_draws} draws",
        "",
        "Stage means of the observables (standardised units):",
        stage_means(result).round(2).to_string(),
        "",
        "Expected duration 1/(1 - P[k,k]) in trading days, and share of days:",
        expected_durations(result).assign(share=stage_shares(result)).round(3).to_string(),
        "",
        "Transition matrix P[i, j] = Pr(stage_t = j | stage_{t-1} = i), posterior mean:",
        transition_matrix(result).round(3).to_string(),
        "",
        "Convergence:",
        f"  max R-hat {diag.max_rhat:.4f} | min bulk ESS {diag.min_ess_bulk:.0f} | "
        f"min tail ESS {diag.min_ess_tail:.0f} | divergences {diag.divergences}",
        f"  chain agreement on stage meanings: {[round(a, 3) for a in diag.chain_agreement]}",
        "  status: " + ("OK" if diag.ok else "PROBLEMS"),
    ]
    lines += [f"  - {p}" for p in diag.problems]
    top = top_days(result, "forced_flow", n_top)
    top.index = top.index.strftime("%Y-%m-%d")
    lines += [
        "",
        f"Days with the highest Pr(stage_t = forced_flow | y_1..y_T) (top {n_top}):",
        top.round(3).to_string(),
    ]
    return "\n".join(lines)
