"""Compare fitted models by their predictive performance (PSIS-LOO with arviz-stats).

Every fit stores ``log_likelihood/y[chain, draw, time] = log p(y_t | y_1..y_{t-1}, theta)``, the
one-step-ahead decomposition of its marginal likelihood. :func:`compare_fits` runs Pareto-
smoothed importance-sampling leave-one-out (Vehtari, Gelman & Gabry 2017) on these terms with
``arviz.compare`` and reports, per model, ``elpd_loo`` (the estimated sum over days of the
log predictive density), its standard error, the difference to the best model with the
standard error of the difference, the effective number of parameters ``p_loo`` and how many
days have a Pareto k above 0.7 (where the importance-sampling estimate is unreliable).

Caveat, stated where the numbers are shown: LOO on a time series is not out of sample.
Leaving out day t removes its one-step term, but the terms of the following days still
condition on ``y_t``; read it as in-sample predictive fit with a complexity correction. An
out-of-sample comparison is leave-future-out: fit to a cut date and filter forward without
refitting (:func:`stressflow.inference.apps.feed.update`), as ``bench/tvtp/compare.py`` does.
All fits compared must cover the same days with the same observables.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.models import dims

__all__ = ["LOO_CAVEAT", "compare_fits"]

LOO_CAVEAT = (
    "PSIS-LOO on the one-step-ahead terms log p(y_t | y_1..y_{t-1}, theta): leaving out day t "
    "does not remove it from the later days' conditioning, so this is in-sample predictive fit "
    "with a complexity correction, not an out-of-sample test (use leave-future-out for that)."
)


def compare_fits(fits: dict[str, xr.DataTree]) -> pd.DataFrame:
    """PSIS-LOO comparison of fits of the same days.

    Parameters
    ----------
    fits : dict of name to fit
        At least two fits holding a ``log_likelihood`` group over the same dates.

    Returns
    -------
    pandas.DataFrame
        One row per model, best first: ``rank``, ``elpd_loo``, ``se``, ``elpd_diff``, ``dse``
        (standard error of the difference to the best), ``p_loo``, ``weight`` (stacking),
        ``n_days``, ``n_k_over_0.7`` and ``model`` (the fit's model options).

    Raises
    ------
    ValueError
        Fewer than two fits, a fit without a ``log_likelihood`` group, or fits over different
        days or observables.
    """
    import arviz as az

    if len(fits) < 2:
        raise ValueError("compare at least two fits")
    times, features = None, None
    for name, fit in fits.items():
        schema.require_fit(fit, needs={"log_likelihood": ("y",)},
                           purpose="model comparison (fit with pointwise_loglik=True)",
                           where=f"fit {name!r}")
        t = fit["log_likelihood"][dims.TIME].values
        f = list(fit["observed_data"][dims.FEATURE].values)
        if times is None:
            times, features = t, f
        elif not np.array_equal(t, times) or f != features:
            raise ValueError(f"fit {name!r} covers other days or observables than the first fit: "
                             "LOO compares models of the same data only")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loos = {name: az.loo(fit, pointwise=True) for name, fit in fits.items()}
        table = az.compare(loos)
    # elpd, se and p from each model's own LOO (arviz's comparison table rounds them); the
    # difference to the best and its standard error from the pointwise terms (Vehtari et al.
    # 2017, eq. 24): se(diff) = sqrt(n var_i(elpd_i^A - elpd_i^B))
    table = pd.DataFrame(table)
    elpd = {name: float(loo.elpd) for name, loo in loos.items()}
    order = sorted(elpd, key=elpd.get, reverse=True)
    best = np.asarray(loos[order[0]].elpd_i).ravel()
    rows = {}
    for rank, name in enumerate(order):
        diff = best - np.asarray(loos[name].elpd_i).ravel()
        rows[name] = {
            "rank": rank,
            "elpd_loo": elpd[name],
            "se": float(loos[name].se),
            "elpd_diff": -float(diff.sum()),
            "dse": float(np.sqrt(diff.size * np.var(diff))),
            "p_loo": float(loos[name].p),
            "weight": float(table.loc[name, "weight"]),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["n_days"] = [len(times)] * len(out)
    out["n_k_over_0.7"] = [int((np.asarray(loos[n].pareto_k) > 0.7).sum()) for n in out.index]
    out["model"] = [_describe(fits[n]) for n in out.index]
    out.index.name = "fit"
    out.attrs["caveat"] = LOO_CAVEAT
    return out


def _describe(fit: xr.DataTree) -> str:
    spec = schema.read_spec(fit)
    text = f"{spec.n_stages} stages, {spec.emission}, {spec.transitions}, {spec.transition_model}"
    if spec.time_varying:
        text += f" ({', '.join(spec.transition_covariates)})"
    return text
