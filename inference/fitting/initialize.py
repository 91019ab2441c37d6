"""Data-driven starting points for the sampler.

A naive start (e.g. stage means at feature quantiles) leaves NUTS chains in different modes of
an HMM posterior. stressflow starts every chain from one data-driven point estimate, relabelled
by the ordering feature, then perturbs each chain by a small seeded jitter in the unconstrained
space so that the chains are not identical:

- :func:`kmeans_start`: k-means with K clusters, a transition matrix counted from the
  cluster sequence. Fast, but its stages flicker from day to day, and on real data chains
  started from it can spend all of tuning in a low-persistence mode (README, the model).
- :func:`em_start` (the default): Baum-Welch EM with the model's Dirichlet prior on P (a MAP
  estimate of the HMM with Gaussian emissions) from several k-means starts, keeping the one
  with the highest log posterior. The E step is :func:`stressflow.models.numerics.kernels.smooth`,
  so
  missing observations are handled exactly as in the model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from stressflow.models import dims
from stressflow.models.emissions import identification_order
from stressflow.models.evaluate import components, evaluate, model_data
from stressflow.models.messages import shown
from stressflow.models.numerics import kernels
from stressflow.models.spec import ModelSpec, allowed_transitions
from stressflow.models.transitions import dirichlet_concentration
from threadpoolctl import threadpool_limits

__all__ = ["kmeans_start", "em_start", "em_search", "EMSearch", "INITS"]

#: Starting-point methods accepted by :func:`stressflow.inference.fitting.fit`.
INITS = ("em", "kmeans")

_MIN_SIGMA = 0.05
#: Trailing windows (days) of the observables that k-means clusters for the EM starts: 1 is the
#: raw days, the longer ones give persistent stage sequences (EM from raw-day clusters can end
#: in a flickering mode of lower posterior; the README gives the measurement).
_EM_SMOOTH_WINDOWS = (1, 5, 21)
#: k-means seeds of :func:`em_start` (each refined by EM from every smoothing window). The stage
#: HMM's posterior on decades of daily data has many modes: on the S&P 500 1985-2018 two seeds
#: left the sampler in a mode 350-370 log-density units below the one 16-64 seeds reach, with
#: other stage meanings (bench/compulsion/README.md, round 6); one seed costs about 0.15 s there.
EM_STARTS = 32


def kmeans_start(features: pd.DataFrame, spec: ModelSpec, seed: int,
                 covariates: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Initial values of the model's free variables from k-means with K clusters.

    Clusters are fitted on the days where every feature is observed, named by the labelling
    rule (:func:`stressflow.models.emissions.identification_order`), and turned into stage
    means, stage scales and a transition matrix estimated from the sequence of cluster labels
    (with the Dirichlet prior's concentration added as pseudo-counts).

    Returns
    -------
    dict
        Constrained-space values keyed by model variable name (``mu_order``, ``mu_other``,
        ``sigma``, ``P`` or ``P_row_<stage>``, ``nu`` for Student-t emissions, and zero
        transition coefficients for a covariate-driven transition model). ``covariates`` is
        accepted for a uniform signature with :func:`em_start` and not used: the start is the
        constant-P special case.
    """
    mu, sigma, trans = _kmeans_params(features, spec, seed)
    return _as_start(mu, sigma, trans, features, spec)


def _kmeans_params(
    features: pd.DataFrame, spec: ModelSpec, seed: int, n_init: int = 10, smooth_window: int = 1
):
    """``(mu[K, D], sigma[K, D], P[K, K])`` from k-means, labels ordered by the order feature.

    With ``smooth_window > 1`` the clustering runs on the trailing ``smooth_window``-day means
    of the observables, which gives persistent stage sequences (the raw-day clusters flicker);
    the stage means and scales are then computed from the unsmoothed observables of each
    cluster's days, and P from the cluster sequence plus the Dirichlet prior's pseudo-counts.
    """
    n_stages = spec.n_stages
    names = [str(c) for c in features.columns]
    y = features.to_numpy(dtype=np.float64)
    # a feature missing on every day (an external series that does not cover the window) takes
    # no part in the clustering; it starts at the standardised prior centre (mu 0, sigma 1)
    seen = np.isfinite(y).any(axis=0)
    y = np.where(seen, y, 0.0)
    complete = np.isfinite(y).all(axis=1)
    if complete.sum() < 10 * n_stages:
        raise ValueError(
            f"only {int(complete.sum())} days have every feature observed; at least "
            f"{10 * n_stages} are needed to initialise {n_stages} stages"
        )
    if smooth_window > 1:
        z = features.rolling(smooth_window, min_periods=1).mean().to_numpy(dtype=np.float64)
        z = np.where(seen, z, 0.0)
        use = np.isfinite(z).all(axis=1)
    else:
        z, use = y, complete
    # one thread: on a few thousand rows OpenMP threads gain nothing, and when the cores are
    # busy (a sampler, Dask workers) their spin-waiting made 96 clusterings take 127 s, not 3 s
    with threadpool_limits(limits=1):
        km = KMeans(n_clusters=n_stages, n_init=n_init, random_state=seed).fit(z[use])
    labels_used = km.labels_
    mu = np.empty((n_stages, len(names)))
    sigma = np.ones((n_stages, len(names)))
    for k in range(n_stages):
        members = y[use][labels_used == k]
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(members, axis=0) if len(members) else np.full(len(names), np.nan)
            sd = np.nanstd(members, axis=0) if len(members) > 1 else np.ones(len(names))
        mu[k] = np.where(np.isfinite(m), m, 0.0)
        sigma[k] = np.where(seen, np.maximum(np.where(np.isfinite(sd), sd, 1.0), _MIN_SIGMA),
                            1.0)
    perm = identification_order(spec, names, mu)  # named stage i = cluster perm[i]
    mu, sigma = mu[perm], sigma[perm]
    labels = np.argsort(perm)[labels_used]
    allowed = allowed_transitions(spec.transitions, n_stages)
    counts = dirichlet_concentration(spec)
    np.add.at(counts, (labels[:-1], labels[1:]), 1.0)
    counts = np.where(allowed, counts, 0.0)
    trans = counts / counts.sum(axis=1, keepdims=True)
    return mu, sigma, trans


def _as_start(mu, sigma, trans, features: pd.DataFrame, spec: ModelSpec) -> dict:
    """Constrained-space initial values keyed by the model's free variable names, from the
    emission and transition components (coefficients of covariate-driven transitions at 0)."""
    emission, transitions = components(spec)
    names = [str(c) for c in features.columns]
    return {**emission.start(spec, names, mu, sigma), **transitions.start(spec, trans)}


def _log_prior_trans(trans: np.ndarray, conc: np.ndarray, allowed: np.ndarray) -> float:
    use = allowed & (conc != 1.0)  # entries with concentration 1 contribute nothing
    return float(np.sum((conc[use] - 1.0) * np.log(trans[use])))


def _em(data, y0, mask, mu, sigma, trans, spec: ModelSpec, names, max_iter: int, tol: float):
    """Baum-Welch EM for the Gaussian stage HMM with constant P and the sticky Dirichlet prior.

    The E step evaluates the model with :func:`stressflow.models.evaluate.evaluate` (``spec``
    must be Gaussian with constant transitions) on ``data`` (its :func:`model_data`); the M step
    is the weighted Gaussian and Dirichlet-MAP update. Returns ``(mu, sigma, P,
    log_posterior, shares)`` where the log posterior is ``log p(y_1..y_T | theta) + log p(P)``
    (the Dirichlet part of the prior, up to a constant) and ``shares[k]`` the share of days
    whose most probable stage at the last E step, ``argmax_j Pr(stage_t = j | y_1..y_T,
    theta)``, is the named stage k.
    """
    allowed = allowed_transitions(spec.transitions, spec.n_stages)
    conc = dirichlet_concentration(spec)
    unseen = mask.sum(axis=0) == 0
    prev = -np.inf
    last = None  # the E step's posteriors at the last finite log posterior
    for _ in range(max_iter):
        # name the stages by the labelling rule before every E step, so that the per-stage
        # priors and the allowed moves always refer to the named stages
        mu, sigma, trans = _relabel(mu, sigma, trans, spec, names, allowed)
        log_init, log_trans, ll = evaluate(spec, {"mu": mu, "sigma": sigma, "P": trans}, data)
        gamma, xi_sum, _, log_norm = kernels.smooth(log_init, log_trans,
                                                    np.ascontiguousarray(ll))
        cur = float(log_norm.sum()) + _log_prior_trans(trans, conc, allowed)
        if not np.isfinite(cur):
            break
        last = gamma
        # M step: weights gamma[t, k] * mask[t, d]
        w = gamma.T @ mask  # (K, D)
        w_safe = np.maximum(w, 1e-12)
        mu = (gamma.T @ (mask * y0)) / w_safe
        second = (gamma.T @ (mask * y0**2)) / w_safe
        sigma = np.sqrt(np.maximum(second - mu**2, _MIN_SIGMA**2))
        sigma[:, unseen] = 1.0  # a feature never observed keeps its start (mu 0, sigma 1)
        counts = np.where(allowed, xi_sum + conc - 1.0, 0.0)
        trans = counts / counts.sum(axis=1, keepdims=True)
        if cur - prev < tol * max(1.0, abs(cur)):
            prev = cur
            break
        prev = cur
    shares = (np.full(spec.n_stages, np.nan) if last is None else
              np.bincount(last.argmax(axis=1), minlength=spec.n_stages) / len(last))
    return mu, sigma, trans, prev, shares


def _relabel(mu, sigma, trans, spec: ModelSpec, names, allowed: np.ndarray):
    """Permute the stages into the labelling rule's order
    (:func:`stressflow.models.emissions.identification_order`); a permuted P keeps only the
    allowed moves (floored at 1e-12 and renormalised)."""
    perm = identification_order(spec, names, mu)
    if np.array_equal(perm, np.arange(len(perm))):
        return mu, sigma, trans
    trans = np.where(allowed, np.maximum(trans[np.ix_(perm, perm)], 1e-12), 0.0)
    return mu[perm], sigma[perm], trans / trans.sum(axis=1, keepdims=True)


#: Two EM optima are the same when their log posteriors differ by less than this and their
#: stage shares by less than _SAME_SHARE (the same configuration reached from other starts).
_SAME_LOG_POSTERIOR = 1.0
_SAME_SHARE = 0.01


@dataclass(frozen=True)
class EMSearch:
    """What the multi-start EM of :func:`em_search` found.

    Attributes
    ----------
    start : dict
        Constrained-space initial values of the best optimum, as :func:`em_start` returns.
    optima : pandas.DataFrame
        One row per distinct optimum (best first): ``log_posterior`` (``log
        p(y_1..y_T | theta) + log p(P)`` up to a constant, as in :func:`em_start`),
        ``n_starts`` (how many of the starts ended in it) and, per stage name, the share of
        days whose most probable stage ``argmax_k Pr(stage_t = k | y_1..y_T, theta)`` at that
        optimum is that stage. Starts whose log posteriors differ by less than 1 and whose
        shares differ by less than 0.01 count as one optimum.
    n_starts : int
        Starts tried (k-means seeds x smoothing windows).
    point : dict
        The best optimum as parameter values of the Gaussian constant-P model: ``mu`` and
        ``sigma`` (K, D), ``P`` (K, K) with ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``
        (what :func:`stressflow.models.evaluate.evaluate` takes for that model).
    """

    start: dict
    optima: pd.DataFrame
    n_starts: int
    point: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready ``{"n_starts": ..., "optima": [row, ...]}`` (stored with the fit)."""
        rows = [{str(k): (int(v) if k == "n_starts" else round(float(v), 4))
                 for k, v in row.items()} for row in self.optima.to_dict(orient="records")]
        return {"n_starts": int(self.n_starts), "optima": rows}


def _distinct(found: list, stage_names) -> pd.DataFrame:
    """Group ``(log_posterior, shares)`` pairs into distinct optima, best first."""
    groups: list[list] = []  # [log_posterior, shares, count]
    for score, shares in sorted(found, key=lambda f: -f[0]):
        for g in groups:
            if (abs(g[0] - score) < _SAME_LOG_POSTERIOR
                    and np.max(np.abs(g[1] - shares)) < _SAME_SHARE):
                g[2] += 1
                break
        else:
            groups.append([score, shares, 1])
    rows = [{"log_posterior": g[0], "n_starts": g[2], **dict(zip(stage_names, g[1], strict=True))}
            for g in groups]
    return pd.DataFrame(rows)


def em_search(
    features: pd.DataFrame,
    spec: ModelSpec,
    seed: int,
    covariates: pd.DataFrame | None = None,
    *,
    n_starts: int = EM_STARTS,
    max_iter: int = 300,
    tol: float = 1e-8,
    split_starts: bool = True,
) -> EMSearch:
    """Baum-Welch EM (MAP under the Dirichlet prior on P) from many k-means starts: the best
    optimum as the sampler's start, and every distinct optimum found.

    For each of ``n_starts`` seeds (``seed, seed + 1, ...``) and each window in
    ``_EM_SMOOTH_WINDOWS``, a k-means solution on the trailing means of the observables is
    refined by EM on the Gaussian stage HMM (missing values skipped exactly as in the model);
    the refined solution with the highest ``log p(y_1..y_T | theta) + log p(P)`` is
    named by the labelling rule (:func:`stressflow.models.emissions.identification_order`,
    also applied before every E step). With ``split_starts`` (default) and K > 2, the same
    search is first run with K - 1 stages and its best optimum split into K stages in every
    way :func:`_splits` lists, each split refined by EM as well: on the S&P 500 1985-2018 a
    split reaches a six-stage optimum far above every one the 96 k-means starts reach (README,
    the model). With ``transitions="sequential"`` or ``"gated"`` the
    forbidden entries of P stay exactly zero through EM. NUTS stays in the mode it starts in,
    so :attr:`EMSearch.optima` (a second configuration close to the best, or a best optimum
    reached from one start only) is what :func:`stressflow.inference.check_fit` reads to say
    whether the start may have missed a mode.
    """
    if n_starts < 1:
        raise ValueError(f"n_starts must be >= 1, got {shown(n_starts)}")
    names = [str(c) for c in features.columns]
    y = features.to_numpy(dtype=np.float64)
    mask = np.isfinite(y).astype(np.float64)
    y0 = np.where(mask > 0, y, 0.0)
    # EM fits the Gaussian constant-P special case of the model (the coefficients of
    # covariate-driven transitions start at 0, and a Student-t fit starts from the Gaussian MAP)
    em_spec = replace(spec, emission="gaussian", transition_model="constant",
                      transition_covariates=())
    data = model_data(em_spec, features)
    starts = [_kmeans_params(features, spec, seed + i, n_init=3, smooth_window=window)
              for i in range(n_starts) for window in _EM_SMOOTH_WINDOWS]
    if split_starts and spec.n_stages > dims.MIN_STAGES:
        fewer = em_search(features, _fewer_stages(em_spec), seed, n_starts=n_starts,
                          max_iter=max_iter, tol=tol, split_starts=False)
        starts += _splits(fewer.point)
    best = None
    found = []
    for mu, sigma, trans in starts:
        mu, sigma, trans, score, shares = _em(data, y0, mask, mu, sigma, trans, em_spec,
                                              names, max_iter, tol)
        if np.isfinite(score):
            found.append((score, shares))
        if best is None or score > best[3]:
            best = (mu, sigma, trans, score)
    allowed = allowed_transitions(spec.transitions, spec.n_stages)
    mu, sigma, trans = _relabel(*best[:3], spec, names, allowed)
    return EMSearch(start=_as_start(mu, sigma, trans, features, spec),
                    optima=_distinct(found, spec.stage_names),
                    n_starts=len(starts),
                    point={"mu": mu, "sigma": sigma, "P": trans})


def _fewer_stages(spec: ModelSpec) -> ModelSpec:
    """The same Gaussian constant-P model with one stage fewer (framework durations for its
    stage names where ``spec`` has a duration prior, none where it has not)."""
    return replace(spec, n_stages=spec.n_stages - 1, discretionary_stage=None,
                   stage_durations=None if spec.stage_durations is None else "framework")


#: Distance, in the stage's own standard deviations, by which a split moves the two halves'
#: means apart from the parent's (each half by half of it).
_SPLIT_DISTANCE = 1.0


def _splits(point: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Starts for K stages from the (K-1)-stage optimum ``point``: each stage k split in two
    (Ueda, Nakano, Ghahramani & Hinton 2000, split-and-merge EM), once along each observable and
    once along all of them, the halves' means ``mu_k -/+ (_SPLIT_DISTANCE / 2) sigma_k`` on the
    split direction, both with the parent's scales, its row of P and half of every move into it.
    The new stage is appended last; :func:`_em` names the stages before its first E step.
    Returns ``(mu[K, D], sigma[K, D], P[K, K])`` per start, ``(K - 1) x (D + 1)`` starts."""
    mu0, sigma0, trans0 = point["mu"], point["sigma"], point["P"]
    k_old, n_obs = mu0.shape
    out = []
    for k in range(k_old):
        for direction in [*np.eye(n_obs), np.ones(n_obs)]:
            step = 0.5 * _SPLIT_DISTANCE * direction * sigma0[k]
            mu = np.vstack([mu0, mu0[k] + step])
            mu[k] = mu0[k] - step
            sigma = np.vstack([sigma0, sigma0[k]])
            trans = np.zeros((k_old + 1, k_old + 1))
            trans[:k_old, :k_old] = trans0
            trans[:, k_old] = trans[:, k] = trans[:, k] / 2
            trans[k_old] = trans[k]
            # every move gets a little mass: _em's naming keeps only the allowed ones
            trans = np.maximum(trans, 1e-6)
            out.append((mu, sigma, trans / trans.sum(axis=1, keepdims=True)))
    return out


def em_start(features: pd.DataFrame, spec: ModelSpec, seed: int,
             covariates: pd.DataFrame | None = None, **options) -> dict[str, np.ndarray]:
    """Initial values from Baum-Welch EM (MAP under the Dirichlet prior on P), multi-start:
    the best optimum of :func:`em_search` (``options``: its ``n_starts``, ``max_iter``,
    ``tol``).

    Returns
    -------
    dict
        Constrained-space values keyed by model variable name, as :func:`kmeans_start`.
    """
    return em_search(features, spec, seed, covariates, **options).start
