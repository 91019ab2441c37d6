"""Thin labelled views of a fit (the pandas/xarray layer over the stored arrays).

Every function takes the ``xarray.DataTree`` returned by
:func:`stressflow.inference.fitting.fit.fit` (or read back with
:func:`stressflow.inference.schema.load_fit`) and returns pandas objects indexed by date and
stage.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.models import dims

__all__ = [
    "stage_probabilities",
    "expected_durations",
    "transition_matrix",
    "stage_means",
    "stage_shares",
    "stationary_shares",
    "top_days",
    "summary",
    "transition_coefficients",
]


def stage_probabilities(result: xr.DataTree, kind: str = "smoothed") -> pd.DataFrame:
    """Posterior stage probabilities per day, columns = stages.

    ``kind="smoothed"``: ``Pr(stage_t = k | y_1..y_T)``, which uses the whole sample (future
    data included). ``kind="filtered"``: ``Pr(stage_t = k | y_1..y_t)``, which uses only data
    up to and including day t. Both are averaged over the parameter posterior.
    """
    if kind not in ("smoothed", "filtered"):
        raise ValueError(f"kind must be 'smoothed' or 'filtered', got {kind!r}")
    return result["stages"][kind].to_pandas()


def expected_durations(result: xr.DataTree, covariates=None) -> pd.DataFrame:
    """Expected stage duration ``1 / (1 - P[k, k])`` in trading days: posterior mean and
    5%/95% quantiles across draws, one row per stage.

    For a covariate-driven transition model the duration depends on the covariates:
    ``covariates`` (a mapping name -> standardised value, or a length-C array in
    ``transition_covariates`` order) gives ``1 / (1 - P_kk(z))`` held at ``z``; the default is
    the stored ``expected_duration`` at ``z = 0`` (every covariate at its fit-window mean).
    """
    if covariates is None:
        dur = result["posterior"]["expected_duration"]
    else:
        dur = _durations_at(result, covariates)
    return _over_draws(dur)


def _over_draws(values: xr.DataArray) -> pd.DataFrame:
    """Posterior mean and 5%/95% quantiles over (chain, draw), one row per stage."""
    draws = (dims.CHAIN, dims.DRAW)
    return pd.DataFrame({
        "mean": values.mean(draws).to_pandas(),
        "q05": values.quantile(0.05, draws).drop_vars("quantile").to_pandas(),
        "q95": values.quantile(0.95, draws).drop_vars("quantile").to_pandas(),
    })


def _durations_at(result: xr.DataTree, covariates) -> xr.DataArray:
    from stressflow.inference import schema
    from stressflow.models.evaluate import evaluate_transitions

    spec = schema.read_spec(result)
    if not spec.time_varying:
        raise ValueError("covariates apply to a covariate-driven transition model only; this "
                         "fit has one constant P")
    names = list(spec.transition_covariates)
    if isinstance(covariates, dict):
        unknown = sorted(set(covariates) - set(names))
        if unknown or len(covariates) != len(names):
            raise ValueError(f"give a value for each of the covariates {names}, got "
                             f"{sorted(covariates)}")
        covariates = [covariates[n] for n in names]
    z = np.asarray(covariates, dtype=np.float64).reshape(-1)
    if z.shape != (len(names),) or not np.isfinite(z).all():
        raise ValueError(f"covariates must be {len(names)} finite values ({names})")
    params, shape = schema.posterior_params(result["posterior"], spec)
    log_trans = evaluate_transitions(spec, params, np.vstack([z, z]))[:, 0]
    stay = np.exp(np.diagonal(log_trans, axis1=-2, axis2=-1))
    return xr.DataArray((1.0 / (1.0 - stay)).reshape(*shape, -1),
                        dims=(dims.CHAIN, dims.DRAW, dims.STAGE),
                        coords={dims.STAGE: list(spec.stage_names)})


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
    """Expected share of days in each stage, ``mean_t Pr(stage_t = k | y_1..y_T)``: a Series
    of length K indexed by stage name."""
    return result["stages"]["smoothed"].mean(dims.TIME).to_pandas()


def stationary_shares(result: xr.DataTree) -> pd.DataFrame:
    """Long-run share of days in each stage implied by the transition matrix alone, ``pi_k``
    with ``pi P = pi`` (:func:`stressflow.models.numerics.markov.stationary_distribution`):
    posterior mean and 5%/95% quantiles across draws, one row per stage. For a
    covariate-driven model it is the law of ``P`` at ``z = 0`` (every covariate at its
    fit-window mean).

    A posterior predictive check beside :func:`stage_shares`: where the fitted path puts far
    more days in a stage than ``P`` implies, the emissions are pulling days into that stage
    against what the transition law (and its prior) expects."""
    from stressflow.models.numerics.markov import stationary_distribution

    trans = result["posterior"]["P"].transpose(dims.CHAIN, dims.DRAW, dims.STAGE_FROM,
                                               dims.STAGE_TO)
    pi = xr.DataArray(stationary_distribution(trans.values),
                      dims=(dims.CHAIN, dims.DRAW, dims.STAGE),
                      coords={dims.STAGE: [str(s) for s in trans[dims.STAGE_TO].values]})
    return _over_draws(pi)


def top_days(result: xr.DataTree, stage: str = "forced_flow", n: int = 10) -> pd.DataFrame:
    """The ``n`` days with the highest smoothed probability of ``stage``.

    Returns
    -------
    pandas.DataFrame, min(n, T) rows, indexed by date, best first; columns
        ``smoothed = Pr(stage_t = stage | y_1..y_T)`` (posterior mean over draws), ``qLL`` and
        ``qHH`` (the fit's lowest and highest stored quantiles of that probability across
        draws, e.g. ``q05`` and ``q95``; one column if one is stored, none if none),
        ``filtered = Pr(stage_t = stage | y_1..y_t)`` (posterior mean) and ``return`` (the log
        close-to-close return of day t).
    """
    st = result["stages"]
    names = [str(k) for k in st[dims.STAGE].values]
    if stage not in names:
        raise ValueError(f"stage must be one of {names}, got {stage!r}")
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
    from stressflow.inference.postprocess.diagnostics import check_fit, start_text

    diag = check_fit(result, warn=False)
    from stressflow.inference import schema

    opts = json.loads(result.attrs.get("fit_options", "{}"))
    spec = schema.read_spec(result)
    lines = [
        f"stressflow fit: {result.attrs.get('source', '')} "
        f"{result.attrs['start']} .. {result.attrs['end']} ({result.attrs['n_days']} days)",
        f"model: emission={spec.emission}, transitions={spec.transitions}, "
        f"transition_model={spec.transition_model}"
        + (f" ({', '.join(spec.transition_covariates)})" if spec.time_varying else "")
        + f"; sampler={opts.get('sampler')}, {diag.n_chains} chains x {diag.n_draws} draws",
        "",
        "Stage means of the observables (standardised units):",
        stage_means(result).round(2).to_string(),
        "",
        "Expected duration 1/(1 - P[k,k]) in trading days; share of days: smoothed (mean_t "
        "Pr(stage_t = k | y_1..y_T)) and stationary (pi P = pi, posterior mean):",
        expected_durations(result).assign(
            share=stage_shares(result),
            stationary=stationary_shares(result)["mean"]).round(3).to_string(),
        "",
        "Transition matrix P[i, j] = Pr(stage_t = j | stage_{t-1} = i), posterior mean"
        + (" (at z = 0, covariates at their fit-window means):" if spec.time_varying else ":"),
        transition_matrix(result).round(3).to_string(),
        *_coefficient_lines(result, spec),
        "",
        "Convergence:",
        f"  max R-hat {diag.max_rhat:.4f} | min bulk ESS {diag.min_ess_bulk:.0f} | "
        f"min tail ESS {diag.min_ess_tail:.0f} | divergences {diag.divergences}",
        f"  chain agreement on stage meanings: {[round(a, 3) for a in diag.chain_agreement]}",
        *(["  EM start: " + start_text(diag.start_starts, diag.start_best_hits,
                                        diag.start_gap)]
          if diag.start_starts is not None else []),
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


def transition_coefficients(result: xr.DataTree) -> pd.DataFrame:
    """Posterior mean, sd and 5%/95% quantiles of the transition coefficients of a
    covariate-driven model: ``gamma`` (ladder) one row per covariate; ``beta`` (logit) one row
    per covariate and allowed move ``i -> j`` (log-odds of ``j`` against staying in ``i`` per
    standard deviation of the covariate). Empty for a constant P."""
    post = result["posterior"]
    rows = []
    for name in ("gamma", "beta"):
        if name not in post:
            continue
        da = post[name].stack(_draw=(dims.CHAIN, dims.DRAW))
        flat = da.transpose(..., "_draw")
        for idx in np.ndindex(*flat.shape[:-1]):
            vals = flat.values[idx]
            if name == "beta" and not np.any(vals):
                continue  # the zero diagonal and forbidden moves
            labels = {d: str(flat[d].values[i]) for d, i in zip(flat.dims[:-1], idx, strict=True)}
            q05, q95 = np.quantile(vals, [0.05, 0.95])
            rows.append({"parameter": name, **labels, "mean": vals.mean(), "sd": vals.std(),
                         "q05": q05, "q95": q95, "Pr(>0)": float((vals > 0).mean())})
    return pd.DataFrame(rows)


def _coefficient_lines(result: xr.DataTree, spec) -> list[str]:
    if not spec.time_varying:
        return []
    table = transition_coefficients(result)
    return ["", f"Transition coefficients ({spec.transition_model}; positive gamma = the "
            "covariate pushes stress up the ladder):", table.round(3).to_string(index=False)]
