"""EM (MAP) fits of the stage HMM designs screened for compulsion.

Model: ``K`` stages with ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``, uniform initial
distribution, and per day the emission

    log p(y_t, r_t | stage_t = k) = sum_d m_td log N(y_td | mu_kd, sigma_kd^2)
                                    + a_t log N(r_t | x_t . b_k, s_k^2)

where ``m_td`` / ``a_t`` are 1 where the value is observed (a missing value contributes 0,
as in the library's kernels), and the second term (the autoregressive return emission, only
when the design has ``ar=True``) has ``x_t = (1, r_{t-1}, V_{t-1} r_{t-1})``. With
``Design.nu`` set, the first term uses Student-t densities with that FIXED number of degrees of
freedom instead of Gaussians (ECM: the M step weights each observation by
``u = (nu + 1) / (nu + ((y - mu) / sigma)^2)``, Liu & Rubin 1995); nu is not estimated.

Prior on P: each row ``P[k, :] ~ Dirichlet(conc[k, :])`` on its allowed entries. Default
(as the library): ``conc = 1 + stickiness`` on the diagonal, 1 elsewhere. With per-stage
duration priors (``Design.durations``, expected durations ``d_k`` in days, ``strength`` = n
pseudo-transitions per row): ``conc[k, k] = 1 + n (1 - 1/d_k)`` and each allowed off-diagonal
entry ``1 + n / (d_k * #off_k)``, so the prior mode of ``P[k, k]`` is about ``1 - 1/d_k``.

E step: :func:`stressflow.models.numerics.kernels.smooth`. M step: weighted means and
variances (floored at ``0.05^2``), per-stage weighted least squares for ``b_k, s_k``, and the
MAP of P under the Dirichlet prior. Starts: k-means (K clusters) on the trailing 1-, 5- and
21-day means of the observables (missing set to 0, the standardised mean) for each k-means
seed (0 and 1, as :func:`stressflow.inference.fitting.initialize.em_start` does; see
:data:`bench.compulsion.scores.SEEDS`). The stages are named by the
design's ordering rule (:func:`order_stages`), re-applied after every M step so that the
per-stage priors and the transition mask always refer to the named stages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln
from sklearn.cluster import KMeans
from stressflow.models.emissions import emission_loglik, masked_observations
from stressflow.models.numerics import kernels

from . import dwell, scales
from .lags import lagged, level, phi_step, stage_loglik, stage_step
from .naming import order_stages, permute

__all__ = ["Design", "Fit", "fit_em", "log_lik", "order_stages", "prior_concentration"]

_MIN_SIGMA = 0.05
#: Named stages in model index order (``discretionary*`` only when K >= 5).
NAMES = ("orderly", "fragile", "margin_pressure", "forced_flow", "discretionary",
         "discretionary2", "discretionary3")
FF = 3


@dataclass(frozen=True)
class Design:
    """A model design.

    ``order``: ``("rank", f)`` sorts the K stages by their mean of observable ``f`` (orderly
    lowest ... forced_flow highest); ``("shortest", f)`` sorts by ``f`` and then names
    forced_flow the SHORTER-lived (smaller ``P[k, k]``) of the two highest stages;
    ``("k5", f_ff, f_level)`` (K >= 5) names forced_flow the stage with the highest mean of
    ``f_ff``, sorts the others by ``f_level`` and names them orderly, fragile,
    margin_pressure and (the highest K - 4) discretionary, discretionary2;
    ``("k5sum", (f1, f2), f_level)``: as ``k5`` with forced flow the largest ``f1 + f2`` mean;
    ``("k6break", f_ff, f_level)`` (K = 6) also names stage 5 (the break) the stage with the
    second-largest mean of ``f_ff``. ``("k5top", f_ff, f_level)``: the highest ``f_level`` mean
    is the last discretionary stage, forced flow the highest ``f_ff`` of the others (K >= 5).
    ``nu``: fixed Student-t degrees of freedom of the observables' emission (None: Gaussian).
    ``ar_intercept=False`` fixes ``b0_k = 0`` (the harness zeroes the constant regressor), so
    no stage is defined by the SIGN of the return (compulsion, not direction).
    ``cov="full"``: each stage's observables are jointly Gaussian with a full covariance
    matrix (Gaussian only), so a stage is defined by how the observables move TOGETHER
    (e.g. impact high for the volume traded), not only by their levels; a missing value is
    marginalised out, and the covariance is estimated from the fully observed rows.
    ``cov="tied"``: one sd per observable shared by all stages (Gaussian only), so a stage is
    defined by where its observables sit, and no stage can be the broad one that takes every
    day extreme on a single observable.
    ``tied``: observables whose sd alone is shared by the stages (with ``cov="diag"``); the
    others keep one sd per stage.
    ``pool``: partial pooling of the sds (with ``cov="diag"``, Gaussian): a Normal prior of sd
    ``pool`` on ``log sigma_kd`` around ``m_d``, the mean over stages of ``log sigma_kd``
    (flat prior on ``m_d``), so each stage keeps its own sd but a stage far broader than the
    others on an observable pays for it; ``pool -> 0`` is ``cov="tied"`` (up to the pooled
    scale), ``pool -> inf`` the unpooled default.
    ``ff_like_mp``: observables on which forced flow has margin pressure's emission (one mean
    and one sd shared by the two stages), so forced flow differs from margin pressure only by
    the other observables (the break, volume, the bond market), not by the LEVEL of stress.
    ``ff_phases``: forced flow as that many phases in series (:mod:`.dwell`; a negative-
    binomial stay); its duration prior ``d`` is then the whole stay, ``d / ff_phases`` a phase.
    ``lag``: observables with an AR(1) emission, one ``phi_d`` shared by the stages
    (:mod:`.lags`); the ordering rule reads a stage's level ``mu_kd / (1 - phi_d)``.
    ``lag_stage``: the ``lag`` coefficients are each stage's own, ``phi_kd``; ``lag_zero``:
    named stages whose coefficient stays 0 (with ``lag_stage``).
    """

    n_stages: int = 4
    transitions: str = "full"
    stickiness: float = 20.0
    durations: tuple[float, ...] | None = None
    strength: float = 100.0
    ar: bool = False
    order: tuple = ("rank", "volatility")
    nu: float | None = None
    ar_intercept: bool = True
    cov: str = "diag"
    tied: tuple[str, ...] = ()
    pool: float | None = None
    ff_like_mp: tuple[str, ...] = ()
    ff_phases: int = 1
    lag: tuple[str, ...] = ()
    lag_stage: bool = False
    lag_zero: tuple[int, ...] = ()


@dataclass
class Fit:
    """EM point estimate. ``mu, sigma``: (K, D); ``beta``: (K, 3) or None; ``s``: (K,) or
    None; ``P``: (K, K); ``log_post``: ``log p(y | theta) + log p(P)`` (the Dirichlet densities
    unnormalised, so compare it only between designs with the same prior on P); ``loglik``:
    ``log p(y | theta)`` alone; ``columns``: names."""

    mu: np.ndarray
    sigma: np.ndarray
    beta: np.ndarray | None
    s: np.ndarray | None
    P: np.ndarray
    log_post: float
    columns: tuple[str, ...]
    n_iter: int
    nu: float | None = None
    cov: np.ndarray | None = None
    loglik: float | None = None
    phi: np.ndarray | None = None
    lag: np.ndarray | None = None


def allowed(design: Design) -> np.ndarray:
    """Boolean (K, K) mask of allowed transitions.

    ``sequential``: among the four named stages stay, move one stage or return to orderly;
    the discretionary stage (K = 5) may be entered from and left to any stage.
    ``gated``: as ``sequential``, but forced flow is entered from margin pressure only (no
    direct move from a discretionary stage): compulsion follows margin calls.
    ``gated_break`` (K >= 6): as ``gated``, and stage 5 (a sudden discretionary break) is
    entered from orderly and fragile only.
    """
    k = design.n_stages
    if design.transitions == "full":
        return np.ones((k, k), dtype=bool)
    if design.transitions not in ("sequential", "gated", "gated_break"):
        raise ValueError("transitions must be 'full', 'sequential' or 'gated', got "
                         f"{design.transitions!r}")
    mask = np.ones((k, k), dtype=bool)
    idx = np.arange(4)
    mask[:4, :4] = np.abs(idx[:, None] - idx[None, :]) <= 1
    mask[:4, 0] = True
    if design.transitions in ("gated", "gated_break"):
        mask[4:, FF] = False
    if design.transitions == "gated_break":
        # stage 5, a sudden discretionary break, starts from calm (orderly, fragile) only
        mask[:, 5] = False
        mask[[0, 1, 5], 5] = True
    return mask


def prior_concentration(design: Design) -> np.ndarray:
    """Dirichlet concentration (K, K) of the rows of P (0 where a transition is forbidden)."""
    k = design.n_stages
    ok = allowed(design)
    if design.durations is None:
        conc = np.where(np.eye(k, dtype=bool), 1.0 + design.stickiness, 1.0)
    else:
        if len(design.durations) != k:
            raise ValueError(f"durations needs {k} values, got {design.durations!r}")
        conc = np.ones((k, k))
        for i, d in enumerate(design.durations):
            d = d / design.ff_phases if i == FF else d
            if d <= 1.0:
                raise ValueError(f"the prior stay of stage {i} (of a phase, with ff_phases) "
                                 f"must exceed one day, got {d!r}")
            off = ok[i].sum() - 1
            conc[i] = 1.0 + design.strength / (d * off)
            conc[i, i] = 1.0 + design.strength * (1.0 - 1.0 / d)
    return np.where(ok, conc, 0.0)


def _ar_loglik(r, x, a, beta, s):
    resid = r[:, None] - x @ beta.T  # (T, K)
    return a[:, None] * (-0.5 * scales.LOG_2PI - np.log(s)[None, :]
                         - 0.5 * (resid / s[None, :]) ** 2)


def log_lik(fit: Fit, y: np.ndarray, ar: tuple | None = None) -> np.ndarray:
    """``log p(y_t, r_t | stage_t = k)`` under ``fit``, shape (T, K) (missing values skipped).

    ``y``: (T, D) standardised observables with NaN for missing; ``ar``: ``(r, x)`` with
    ``r`` (T,) and ``x`` (T, 3) (NaN for missing) when the fit has an AR emission.
    """
    if fit.lag is not None and fit.phi.ndim == 2:
        ll = stage_loglik(y, fit.mu, fit.sigma, fit.phi, fit.lag)
    else:
        if fit.lag is not None:
            y = lagged(y, fit.phi, fit.lag)
        y0, mask = masked_observations(y)
        ll = _obs_loglik(y0, mask, fit.mu, fit.sigma if fit.cov is None else fit.cov, fit.nu)
    if fit.beta is not None:
        r, x, a = _ar_arrays(ar)
        ll = ll + _ar_loglik(r, x, a, fit.beta, fit.s)
    return ll


def _obs_loglik(y0, mask, mu, sigma, nu):
    if sigma.ndim == 3:
        return scales.mvn_loglik(y0, mask, mu, sigma)
    if nu is None:
        return emission_loglik(y0, mask, mu, sigma)
    return emission_loglik(y0, mask, mu, sigma, np.full(mu.shape[0], float(nu)),
                           gammaln=gammaln)


def _t_weights(y0, mask, mu, sigma, nu):
    """ECM weights ``u[t, k, d] = (nu + 1) / (nu + z^2)`` (1 where missing or Gaussian)."""
    if nu is None:
        return None
    z = (y0[:, None, :] - mu[None]) / sigma[None]
    u = (nu + 1.0) / (nu + z**2)
    return np.where(mask[:, None, :] > 0, u, 1.0)


def _ar_arrays(ar):
    if ar is None:
        raise ValueError("this design has an AR return emission: pass ar=(r, x)")
    r, x = (np.asarray(v, dtype=np.float64) for v in ar)
    a = (np.isfinite(r) & np.isfinite(x).all(axis=1)).astype(np.float64)
    return np.where(a > 0, r, 0.0), np.where(a[:, None] > 0, x, 0.0), a


def _start(y, y0, mask, arr, design, columns, seed, window):
    k = design.n_stages
    filled = np.where(np.isfinite(y), y, 0.0)
    if window > 1:
        kern = np.ones(window) / window
        filled = np.vstack([np.convolve(filled[:, d], kern)[: len(filled)]
                            for d in range(filled.shape[1])]).T
    labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(filled).labels_
    w = np.eye(k)[labels]  # hard responsibilities (T, K)
    if not design.lag:
        return _m_step(w, None, y0, mask, arr, design, None, None, columns), None
    cols = np.isin(np.array(columns), design.lag)
    first = _m_step(w, None, y0, mask, arr, design, None, None, columns)
    if design.lag_stage:
        mu, sigma, phi = stage_step(w, y, first[0], first[1], cols, _MIN_SIGMA,
                                    design.lag_zero)
        return (mu, sigma, *first[2:]), phi
    phi = phi_step(w, y, first[1], cols)
    x0, xmask = masked_observations(lagged(y, phi, cols))
    return _m_step(w, None, x0, xmask, arr, design, None, None, columns), phi


def _m_step(gamma, xi_sum, y0, mask, arr, design, conc, u, columns):
    k = gamma.shape[1]
    wsum = np.maximum(gamma.T @ mask, 1e-12)
    if u is None:
        mu = (gamma.T @ (mask * y0)) / wsum
        second = (gamma.T @ (mask * y0**2)) / wsum
        sigma = np.sqrt(np.maximum(second - mu**2, _MIN_SIGMA**2))
    else:  # Student-t ECM: weights gamma[t, k] * mask[t, d] * u[t, k, d]
        wu = gamma[:, :, None] * mask[:, None, :] * u
        mu = (wu * y0[:, None, :]).sum(axis=0) / np.maximum(wu.sum(axis=0), 1e-12)
        dev = (wu * (y0[:, None, :] - mu[None]) ** 2).sum(axis=0)
        sigma = np.sqrt(np.maximum(dev / wsum, _MIN_SIGMA**2))
    if design.cov == "full":
        sigma = scales.full_cov(gamma, y0, mask, mu, floor=_MIN_SIGMA)
    tied = list(columns) if design.cov == "tied" else list(design.tied)
    if tied:  # the pooled within-stage variance of each tied observable
        idx = [list(columns).index(c) for c in tied]
        pooled = ((sigma[:, idx] ** 2) * wsum[:, idx]).sum(axis=0) / wsum[:, idx].sum(axis=0)
        sigma[:, idx] = np.sqrt(np.maximum(pooled, _MIN_SIGMA**2))
    if design.ff_like_mp:
        idx = [list(columns).index(c) for c in design.ff_like_mp]
        mu, sigma = scales.share_mp_ff(mu, sigma, wsum, idx, mp=FF - 1, ff=FF, floor=_MIN_SIGMA)
    if design.pool is not None:
        sigma = scales.pooled_sigma(sigma, wsum, design.pool, floor=_MIN_SIGMA)
    beta = s = None
    if arr is not None:
        r, x, a = arr
        beta = np.empty((k, x.shape[1]))
        s = np.empty(k)
        for j in range(k):
            w = gamma[:, j] * a
            xtw = x.T * w
            beta[j] = np.linalg.solve(xtw @ x + 1e-6 * np.eye(x.shape[1]), xtw @ r)
            resid = r - x @ beta[j]
            s[j] = np.sqrt(max(float(w @ resid**2) / max(w.sum(), 1e-12), _MIN_SIGMA**2))
    if xi_sum is None:  # from a hard clustering: P from the label sequence
        lab = gamma.argmax(axis=1)
        xi_sum = np.zeros((k, k))
        np.add.at(xi_sum, (lab[:-1], lab[1:]), 1.0)
    counts = xi_sum + (np.where(np.eye(k, dtype=bool), 1.0 + design.stickiness, 1.0)
                       if conc is None else conc - 1.0)
    ok = allowed(design)
    counts = np.where(ok, np.maximum(counts, 1e-10), 0.0)
    trans = counts / counts.sum(axis=1, keepdims=True)
    return mu, sigma, beta, s, trans


def _run(params, phi, y, y0, mask, arr, design, columns, max_iter, tol):
    cols = np.isin(np.array(columns), design.lag)
    by_stage = phi is not None and phi.ndim == 2
    if phi is not None and not by_stage:
        y0, mask = masked_observations(lagged(y, phi, cols))
    conc = prior_concentration(design)
    ok = allowed(design)
    log_init = np.full(design.n_stages, -np.log(design.n_stages))
    m = design.ff_phases
    prev = prev_ll = -np.inf
    n_iter = 0
    for _ in range(max_iter):
        n_iter += 1
        perm = order_stages(design, level(params[0], phi), params[4], columns)
        if not np.array_equal(perm, np.arange(design.n_stages)):
            params = permute(params, perm)
            phi = phi[perm] if by_stage else phi
        mu, sigma, beta, s, trans = params
        trans = np.where(ok, np.maximum(trans, 1e-12), 0.0)
        trans = trans / trans.sum(axis=1, keepdims=True)
        ll = (stage_loglik(y, mu, sigma, phi, cols) if by_stage
              else _obs_loglik(y0, mask, mu, sigma, design.nu))
        if beta is not None:
            ll = ll + _ar_loglik(*arr, beta, s)
        gamma, xi_sum, _, log_norm = kernels.smooth(*dwell.expand(log_init, trans, ll, m, FF))
        gamma = dwell.collapse_probs(gamma, design.n_stages, FF)
        xi_sum, n_adv = dwell.collapse_xi(xi_sum, design.n_stages, m, FF)
        use = ok & (conc != 1.0)
        loglik = float(log_norm.sum())
        cur = loglik + float(np.sum((conc[use] - 1.0) * np.log(trans[use])))
        if design.pool is not None:
            cur += scales.pool_log_prior(sigma, design.pool)
        if not np.isfinite(cur):
            break
        u = _t_weights(y0, mask, mu, sigma, design.nu)
        if phi is not None and not by_stage:  # ECM: phi given the stages, then the rest
            phi = phi_step(gamma, y, sigma, cols)
            y0, mask = masked_observations(lagged(y, phi, cols))
        params = _m_step(gamma, xi_sum, y0, mask, arr, design, conc, u, columns)
        if by_stage:  # exact M step of the stage-specific AR columns
            mu_new, sigma_new, phi = stage_step(gamma, y, params[0], params[1], cols, _MIN_SIGMA,
                                                design.lag_zero)
            params = (mu_new, sigma_new, *params[2:])
        if m > 1:
            params[4][FF] = dwell.ff_row(xi_sum, n_adv, conc, ok, FF)
        done = abs(cur - prev) < tol * max(1.0, abs(cur))
        prev, prev_ll = cur, loglik
        if done:
            break
    perm = order_stages(design, level(params[0], phi), params[4], columns)
    params = permute(params, perm)
    return params, (phi[perm] if by_stage else phi), prev, n_iter, prev_ll


def fit_em(y: np.ndarray, columns, design: Design, *, ar: tuple | None = None,
           seeds=(0, 1), windows=(1, 5, 21), max_iter: int = 300, tol: float = 1e-8) -> Fit:
    """MAP estimate by multi-start EM; the start with the highest log posterior is kept.

    Parameters
    ----------
    y : ndarray, shape (T, D)
        Standardised observables, NaN where missing. Not modified.
    columns : sequence of str
        Names of the D columns (the ordering rule refers to them).
    design : Design
    ar : (r, x), optional
        Return ``r`` (T,) and regressors ``x`` (T, 3); required iff ``design.ar``.
    """
    columns = tuple(columns)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != len(columns):
        raise ValueError(f"y must be (T, {len(columns)}), got {y.shape}")
    y0, mask = masked_observations(y)
    if design.cov not in ("diag", "full", "tied") or (
            design.cov != "diag" and (design.nu is not None or design.pool is not None)) or (
            design.pool is not None and (design.nu is not None or design.pool <= 0)):
        raise ValueError(f"cov must be 'diag', 'full' or 'tied' (the last two Gaussian only; "
                         f"pool > 0 with a Gaussian 'diag' only), got {design.cov!r}, "
                         f"nu={design.nu!r}, pool={design.pool!r}")
    if design.lag and (design.nu is not None or design.cov != "diag" or design.tied
                       or design.ff_like_mp or design.pool is not None):
        raise ValueError("the AR(1) emission (lag) is implemented for Gaussian, diagonal, "
                         "untied and unpooled designs only")
    if (design.lag_stage and not design.lag) or (design.lag_zero and not design.lag_stage) or any(
            not 0 <= k < design.n_stages for k in design.lag_zero):
        raise ValueError("lag_stage needs lag, and lag_zero needs lag_stage and stage indices "
                         f"below {design.n_stages}; got {design.lag!r}, {design.lag_stage!r}, "
                         f"{design.lag_zero!r}")
    arr = _ar_arrays(ar) if design.ar else None
    best = None
    for seed in seeds:
        for window in windows:
            params, phi = _start(y, y0, mask, arr, design, columns, seed, window)
            params, phi, score, n_iter, loglik = _run(params, phi, y, y0, mask, arr, design,
                                                      columns, max_iter, tol)
            if best is None or score > best[2]:
                best = (params, phi, score, n_iter, loglik)
    (mu, sigma, beta, s, trans), phi, score, n_iter, loglik = best
    cov = None
    if sigma.ndim == 3:
        cov, sigma = sigma, np.sqrt(np.diagonal(sigma, axis1=1, axis2=2))
    lag = np.isin(np.array(columns), design.lag) if design.lag else None
    return Fit(mu, sigma, beta, s, trans, score, columns, n_iter, design.nu, cov, loglik, phi,
               lag)
