"""Convergence checks of a fit, with advice the user can act on."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import xarray as xr
from stressflow.inference import schema
from stressflow.models import dims
from stressflow.models.evaluate import param_names

__all__ = ["Diagnostics", "FitWarning", "check_fit", "RHAT_MAX", "AGREEMENT_MIN",
           "SPARSE_STAGE_DAYS", "START_GAP_MAX", "START_SHARE_CHANGE", "start_check",
           "start_text"]

#: Largest acceptable rank-normalised split R-hat (Vehtari et al. 2021).
RHAT_MAX = 1.01
#: Smallest acceptable share of days on which each chain's most probable stage agrees with the
#: pooled one: below it the chains have given the stages different meanings.
AGREEMENT_MIN = 0.9
#: Smallest acceptable bulk effective sample size per chain.
ESS_PER_CHAIN_MIN = 100
#: A stage with fewer expected days than this under some chain is "sparse": its parameters are
#: set by the prior and the ordering more than by the data, and chains can settle with it in
#: different places of the ordering (a multimodal posterior that more tuning does not mix;
#: measured in bench/results/sbc.md).
SPARSE_STAGE_DAYS = 20.0
#: A second EM optimum whose log posterior is within this of the start's, with at least
#: START_SHARE_CHANGE of the days in another stage, is a competing stage configuration: NUTS
#: stays in the mode it starts in, and a density ratio below e^10 can be overturned by the
#: modes' widths in a parameter space of this size (a heuristic, not a measured threshold).
#: The share is 5%, not less: on the S&P 500 2005-2012 an optimum 3.7 units below the best
#: moves 2.8% of the days between fragile and margin pressure with forced flow within 0.4
#: points, a variant of the same configuration.
START_GAP_MAX = 10.0
START_SHARE_CHANGE = 0.05


class FitWarning(UserWarning):
    """A fit finished but its diagnostics say the result should not be trusted as is."""


@dataclass
class Diagnostics:
    """Summary of a fit's convergence.

    Attributes
    ----------
    max_rhat, min_ess_bulk, min_ess_tail : float
        Over every element of ``mu``, ``sigma``, ``P`` (and ``nu``); structural zeros of P
        are skipped.
    divergences : int
        Divergent transitions after tuning, all chains.
    chain_agreement : list of float
        Per chain, the share of days on which the chain's most probable smoothed stage equals
        the pooled one.
    problems : list of str
        One sentence per failed check, each saying what to do.
    sparse_stages : dict of str to float
        Stages that some chain puts on fewer than :data:`SPARSE_STAGE_DAYS` expected days, with
        the smallest such count: ``min over chains of sum_t E[Pr(stage_t = k | y_1..y_T,
        theta) | chain]`` (empty for fit files written before this was stored).
    start_starts, start_best_hits : int or None
        EM starts tried for the sampler's start, and how many ended in the best optimum or a
        variant of it (within :data:`START_GAP_MAX` log posterior units, less than
        :data:`START_SHARE_CHANGE` of the days in another stage); None where the fit stores no
        EM search (``init="kmeans"`` or an older file).
    start_gap : float
        Log posterior of the best EM optimum minus that of the best optimum with another stage
        configuration (at least :data:`START_SHARE_CHANGE` of the days in another stage); inf
        when the search found no other configuration, NaN without a stored search.
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    chain_agreement: list[float]
    n_chains: int
    n_draws: int
    problems: list[str] = field(default_factory=list)
    sparse_stages: dict[str, float] = field(default_factory=dict)
    start_starts: int | None = None
    start_best_hits: int | None = None
    start_gap: float = float("nan")

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        """The fields as a strict-JSON-serialisable dict: a figure that does not exist is
        ``None`` instead of NaN or inf (R-hat with one chain, the gap to the next stage
        configuration when the EM starts found only one), so ``json.dumps(..., allow_nan=False)``
        accepts it."""
        return {
            "max_rhat": _finite_or_none(self.max_rhat),
            "min_ess_bulk": _finite_or_none(self.min_ess_bulk),
            "min_ess_tail": _finite_or_none(self.min_ess_tail),
            "divergences": self.divergences,
            "chain_agreement": self.chain_agreement,
            "n_chains": self.n_chains,
            "n_draws": self.n_draws,
            "problems": list(self.problems),
            "sparse_stages": dict(self.sparse_stages),
            "start_starts": self.start_starts,
            "start_best_hits": self.start_best_hits,
            "start_gap": _finite_or_none(self.start_gap),
        }


def _finite_or_none(value):
    """``float(value)``, or None when it is None, NaN or infinite."""
    return None if value is None or not np.isfinite(value) else float(value)


def _sparse_stages(result: xr.DataTree) -> dict[str, float]:
    """Stages some chain puts on fewer than SPARSE_STAGE_DAYS expected days, with that count."""
    stages = result["stages"]
    if "chain_stage_days" not in stages:
        return {}
    days = stages["chain_stage_days"].min(dims.CHAIN)
    return {str(k): float(v) for k, v in zip(days[dims.STAGE].values, days.values, strict=True)
            if v < SPARSE_STAGE_DAYS}


def _sparse_text(sparse: dict[str, float]) -> str:
    """E.g. "a chain puts only 3.2 expected days in 'forced_flow'"."""
    parts = [f"{v:.1f} expected days in '{k}'" for k, v in sparse.items()]
    return "a chain puts only " + " and ".join(parts)


def start_text(starts: int, hits: int, gap: float) -> str:
    """The EM start record in words, e.g. "best of 124 starts, reached from 36; next stage
    configuration 546.2 log posterior units lower" (``summary`` and ``evaluate`` print it)."""
    rest = (f"next stage configuration {gap:.1f} log posterior units lower" if np.isfinite(gap)
            else "no other stage configuration found")
    return f"best of {starts} starts, reached from {hits}; {rest}"


def start_check(result: xr.DataTree) -> tuple[int | None, int | None, float, list[str]]:
    """``(starts, best_hits, gap, problems)`` of the EM search stored with the fit, as
    :class:`Diagnostics` reports them (``start_starts``, ``start_best_hits``, ``start_gap``)
    with the problem sentences; ``(None, None, nan, [])`` where none is stored."""
    stored = schema.start_optima(result)
    if stored is None:
        return None, None, float("nan"), []
    n_starts, optima = stored
    shares = optima.drop(columns=["log_posterior", "n_starts"]).to_numpy(dtype=float)
    change = np.max(np.abs(shares - shares[0]), axis=1)
    other = np.flatnonzero(change >= START_SHARE_CHANGE)
    below = optima["log_posterior"].iloc[0] - optima["log_posterior"].to_numpy(dtype=float)
    gap = float(below[other[0]]) if other.size else float("inf")
    # the starts that ended in the best optimum or in a variant of it (same configuration,
    # close in log posterior)
    hits = int(optima["n_starts"][(change < START_SHARE_CHANGE) & (below < START_GAP_MAX)].sum())
    problems = []
    if gap < START_GAP_MAX:
        problems.append(
            f"the EM search for the sampler's start found another stage configuration "
            f"({change[other[0]]:.0%} of the days in another stage) within {gap:.1f} log "
            "posterior units of the one the chains started from; NUTS does not move between "
            "such modes, so these probabilities hold within one of them: compare fits from "
            "other seeds (the mean of their chains' sample_stats logp), or fit a longer window"
        )
    if hits == 1 and n_starts > 1:
        problems.append(
            f"the sampler's start was reached from 1 of {n_starts} EM starts (none ended in "
            "a variant of it), so a better stage configuration may remain unfound: refit with "
            "another seed and keep the "
            "fit whose chains have the higher mean log density (sample_stats logp)"
        )
    return n_starts, hits, gap, problems


def _finite_extreme(ds: xr.Dataset, fn) -> float:
    vals = np.concatenate([np.ravel(ds[v].values) for v in ds.data_vars])
    vals = vals[np.isfinite(vals)]
    return float(fn(vals)) if vals.size else float("nan")


def check_fit(result: xr.DataTree, *, warn: bool = True) -> Diagnostics:
    """R-hat, ESS, divergences and chain agreement on the stage meanings.

    With ``warn=True`` every failed check is raised as a
    :class:`FitWarning` whose message says what to do. The checked parameters are those the
    fit's model evaluates (:func:`stressflow.models.evaluate.param_names`: e.g. ``mu``,
    ``sigma``, ``P`` and any transition coefficients); entries that are constant by construction
    (structural zeros of P, the zero diagonal of ``beta``) have no R-hat and are skipped.
    """
    posterior = result["posterior"].to_dataset()
    names = [p for p in param_names(schema.read_spec(result)) if p in posterior]
    params = posterior[names]
    n_chains = posterior.sizes["chain"]
    n_draws = posterior.sizes["draw"]
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # constant entries divide 0 by 0 inside arviz; they are skipped below, not reported
        warnings.simplefilter("ignore", RuntimeWarning)
        max_rhat = _finite_extreme(az.rhat(params), np.max) if n_chains > 1 else float("nan")
        min_ess_bulk = _finite_extreme(az.ess(params, method="bulk"), np.min)
        min_ess_tail = _finite_extreme(az.ess(params, method="tail"), np.min)
    stats = result["sample_stats"].to_dataset()
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    agreement = [float(a) for a in result["stages"]["chain_agreement"].values]

    sparse = _sparse_stages(result)
    problems = []
    if n_chains < 2:
        problems.append(
            "only one chain was run, so R-hat and chain agreement cannot be checked: "
            "run at least 2 chains (4 recommended)"
        )
    elif not max_rhat <= RHAT_MAX and sparse:
        problems.append(
            f"max R-hat is {max_rhat:.3f} (> {RHAT_MAX}) and {_sparse_text(sparse)}: too few "
            "for the data to fix those stages' parameters, so the chains have placed them "
            "differently; this posterior has several stage configurations and more tuning "
            "does not mix them: fit a longer window, or fewer stages (n_stages=4 or "
            "discretionary_stage=False), before reading these probabilities"
        )
    elif not max_rhat <= RHAT_MAX:
        problems.append(
            f"max R-hat is {max_rhat:.3f} (> {RHAT_MAX}): the chains have not mixed; run more "
            "tuning and draws (e.g. tune=2000, draws=2000), and if it persists the model may "
            "have competing stage configurations: try a shorter window, another seed, or a "
            "more constrained P (transitions='gated', the default)"
        )
    if divergences:
        problems.append(
            f"{divergences} divergent transitions after tuning: the sampler could not follow "
            "the posterior everywhere; raise target_accept (e.g. 0.95) and check for "
            "outlying data (emission='student_t' is robust to fat tails)"
        )
    if min_ess_bulk < ESS_PER_CHAIN_MIN * n_chains:
        problems.append(
            f"min bulk ESS is {min_ess_bulk:.0f} (< {ESS_PER_CHAIN_MIN} per chain x "
            f"{n_chains} chains): "
            "posterior summaries are noisy; increase draws"
        )
    low = [i for i, a in enumerate(agreement) if a < AGREEMENT_MIN]
    if n_chains > 1 and low:
        problems.append(
            f"chains {low} disagree with the pooled stage assignment on more than "
            f"{1 - AGREEMENT_MIN:.0%} of days (agreement {[round(agreement[i], 3) for i in low]}): "
            "the chains gave the stages different meanings; do not average them: refit with "
            "more tuning or another seed, and inspect each chain's posterior 'mu'"
        )
    start_starts, start_best_hits, start_gap, start_problems = start_check(result)
    problems += start_problems
    diag = Diagnostics(
        max_rhat=max_rhat,
        min_ess_bulk=min_ess_bulk,
        min_ess_tail=min_ess_tail,
        divergences=divergences,
        chain_agreement=agreement,
        n_chains=n_chains,
        n_draws=n_draws,
        problems=problems,
        sparse_stages=sparse,
        start_starts=start_starts,
        start_best_hits=start_best_hits,
        start_gap=start_gap,
    )
    if warn and problems:
        for p in problems:
            warnings.warn(p, FitWarning, stacklevel=3)
    return diag
