"""Per-stage emission log-densities: the only place where the observables meet the stages.

A model builds ``log_lik[T, K] = log p(y_t | stage_t = k)`` here and hands it to the HMM
kernels, which never see the emission model. The same function serves the PyMC graph
(``xp=pytensor.tensor``) and the NumPy post-processing of posterior draws (``xp=numpy``), so the
likelihood that is sampled and the one used for stage probabilities cannot drift apart.

Conditional on the stage, the D observables are independent (diagonal covariance):

- Gaussian:   ``log p(y_t | k) = sum_d m_td * log N(y_td | mu_kd, sigma_kd)``
- Student-t:  ``log p(y_t | k) = sum_d m_td * log t_nu_k(y_td | mu_kd, sigma_kd)``

where ``m_td`` is 1 if feature d is observed on day t and 0 if it is missing, so a missing
value is skipped in the likelihood and a day with nothing observed contributes a zero row.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
from stressflow.models import dims
from stressflow.models.spec import ModelSpec

__all__ = ["EMISSION_COMPONENTS", "GaussianEmission", "StudentTEmission", "emission_loglik",
           "masked_observations", "gaussian_design", "gaussian_loglik", "identification_order",
           "other_features", "ranked_stage_names"]

_LOG_2PI = math.log(2.0 * math.pi)


def masked_observations(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a ``(T, D)`` array with NaN for missing values into ``(y0, mask)``.

    ``y0`` has the missing entries replaced by 0 and ``mask`` is 1.0 where observed, 0.0 where
    missing; both are float64 arrays of shape (T, D).
    """
    y = np.asarray(features, dtype=np.float64)
    mask = np.isfinite(y)
    return np.where(mask, y, 0.0), mask.astype(np.float64)


def _mT(x, xp):
    return xp.swapaxes(x, -1, -2)


def gaussian_design(y0, mask, *, xp: ModuleType = np):
    """Data part of the Gaussian log-density: ``(design[T, 3D], offset[T])``.

    Expanding the square, ``sum_d m_td log N(y_td | mu_kd, sigma_kd) = design_t . w_k +
    offset_t`` with ``design_t = (y_t**2, y_t, m_t)`` (y0 is 0 wherever the mask is 0, the
    contract of :func:`masked_observations`), ``offset_t = -0.5 log(2 pi) sum_d m_td`` and the
    parameter weights ``w_k`` of :func:`gaussian_loglik`. The design does not depend on the
    parameters, so a model stores it once as data and each log-density evaluation is a single
    ``(T, 3D) x (3D, K)`` product (and its gradient a single transposed product).
    """
    design = xp.concatenate([y0**2, y0, mask], axis=-1)
    offset = -0.5 * _LOG_2PI * mask.sum(axis=-1)
    return design, offset


def gaussian_loglik(design, offset, mu, sigma, *, xp: ModuleType = np):
    """``log p(y_t | stage_t = k)`` for Gaussian emissions, from :func:`gaussian_design`.

    ``mu, sigma`` have shape (..., K, D); returns shape (..., T, K). The weights of stage k are
    ``(-1 / (2 sigma_k**2), mu_k / sigma_k**2, -mu_k**2 / (2 sigma_k**2) - log sigma_k)``.
    """
    prec = 1.0 / sigma**2
    weights = xp.concatenate(
        [-0.5 * prec, mu * prec, -0.5 * mu**2 * prec - xp.log(sigma)], axis=-1
    )  # (..., K, 3D)
    return design @ _mT(weights, xp) + offset[:, None]


def emission_loglik(y0, mask, mu, sigma, nu=None, *, xp: ModuleType = np, gammaln=None):
    """``log p(y_t | stage_t = k)`` for every day and stage.

    Parameters
    ----------
    y0, mask : arrays, shape (T, D)
        Observations with missing entries set to 0 (required: the Gaussian branch relies on
        it), and the 0/1 observation mask (see :func:`masked_observations`).
    mu, sigma : arrays, shape (..., K, D)
        Per-stage location and scale; leading dims (e.g. posterior draws) broadcast.
    nu : array, shape (..., K), optional
        Per-stage Student-t degrees of freedom; ``None`` for Gaussian emissions.
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    gammaln : callable, optional
        Log-gamma function of the same backend (needed for Student-t only).

    Returns
    -------
    array, shape (..., T, K)
        ``log p(y_t | stage_t = k)``, with missing features skipped.
    """
    if nu is None:
        design, offset = gaussian_design(y0, mask, xp=xp)
        return gaussian_loglik(design, offset, mu, sigma, xp=xp)
    log_sigma = xp.log(sigma)
    if gammaln is None:
        raise ValueError("Student-t emissions need the backend's gammaln")
    # (..., T, K, D) elementwise Student-t log density
    y = y0[..., :, None, :]
    m = mask[..., :, None, :]
    z = (y - mu[..., None, :, :]) / sigma[..., None, :, :]
    nu_ = nu[..., None, :, None]
    logpdf = (
        gammaln((nu_ + 1.0) / 2.0)
        - gammaln(nu_ / 2.0)
        - 0.5 * xp.log(nu_ * math.pi)
        - log_sigma[..., None, :, :]
        - (nu_ + 1.0) / 2.0 * xp.log1p(z**2 / nu_)
    )
    return (m * logpdf).sum(axis=-1)


# ------------------------------------------------------------------------------------------
# Emission components: priors, start values, data containers and log p(y_t | stage_t = k)
# ------------------------------------------------------------------------------------------

# Floor of a starting scale (a stage cannot collapse onto a handful of days).
_MIN_SIGMA = 0.05
# Floor of a starting gap between forced flow's compulsion-feature mean and another stage's.
_MIN_GAP = 0.05


def _feature_roles(spec: ModelSpec, feature_names) -> tuple[int, int | None, list[int]]:
    """``(order_idx, compulsion_idx or None, other indices)`` of the observables."""
    names = list(feature_names)
    for role in ("order_feature", "compulsion_feature"):
        name = getattr(spec, role)
        if name is not None and name not in names:
            raise ValueError(f"{role} {name!r} is not among the features {names}")
    order_idx = names.index(spec.order_feature)
    comp_idx = None if spec.compulsion_feature is None else names.index(spec.compulsion_feature)
    other = [d for d in range(len(names)) if d not in (order_idx, comp_idx)]
    return order_idx, comp_idx, other


def other_features(spec: ModelSpec, feature_names) -> list[str]:
    """The observables whose stage means are free (``mu_other``): all but the ordering and
    the compulsion feature."""
    names = list(feature_names)
    return [names[d] for d in _feature_roles(spec, names)[2]]


def _ranked_stages(spec: ModelSpec) -> tuple[int, list[int]]:
    """``(forced-flow index, the other stage indices in model order)``."""
    ff = spec.stage_names.index(dims.FORCED_FLOW)
    return ff, [k for k in range(spec.n_stages) if k != ff]


def ranked_stage_names(spec: ModelSpec) -> list[str]:
    """Coordinates of :data:`stressflow.models.dims.STAGE_RANKED`: the stages other than
    forced flow, in model order (their ``order_feature`` means increase in this order)."""
    ff, ranked = _ranked_stages(spec)
    return [spec.stage_names[k] for k in ranked]


def identification_order(spec: ModelSpec, feature_names, mu: np.ndarray) -> np.ndarray:
    """The labelling rule as a permutation: named stage ``i`` is estimated stage ``perm[i]``.

    Without ``spec.compulsion_feature`` the stages are named in increasing order of their
    ``order_feature`` mean. With it, forced flow is the stage with the highest
    ``compulsion_feature`` mean and the others are named in increasing order of their
    ``order_feature`` mean (orderly, fragile, margin_pressure, then discretionary). ``mu`` is
    (K, D); the PyMC model imposes the same rule as a constraint.
    """
    order_idx, comp_idx, _ = _feature_roles(spec, feature_names)
    mu = np.asarray(mu, dtype=np.float64)
    if comp_idx is None:
        return np.argsort(mu[:, order_idx], kind="stable")
    ff_est = int(np.argmax(mu[:, comp_idx]))
    rest = sorted((i for i in range(mu.shape[0]) if i != ff_est), key=lambda i: mu[i, order_idx])
    ff, ranked = _ranked_stages(spec)
    perm = np.empty(mu.shape[0], dtype=int)
    perm[ff] = ff_est
    perm[ranked] = rest
    return perm


class GaussianEmission:
    """Independent Gaussian observables given the stage.

    Priors (standardised scale): ``mu[k, d] ~ Normal(0, mu_prior_sd)``, the stage means of
    ``spec.order_feature`` constrained increasing across stages (PyMC's ordered transform: this
    identifies the labels); ``sigma[k, d] ~ Gamma(2, 2)``.

    With ``spec.compulsion_feature`` (the default model) the labels are identified by two
    features: forced flow's mean of the compulsion feature is ``mu_compulsion_ff ~ Normal(0,
    mu_prior_sd)`` and every other stage's is ``mu_compulsion_ff - compulsion_gap[k]`` with
    ``compulsion_gap[k] ~ Gamma(2, 1)`` (so forced flow has the highest mean of it); the other
    stages' means of ``order_feature`` are ordered (``mu_order``, dim ``stage_ranked``) and
    forced flow's is free (``mu_order_ff ~ Normal(0, mu_prior_sd)``).
    """

    name = "gaussian"

    def param_names(self, spec: ModelSpec) -> tuple[str, ...]:
        return ("mu", "sigma")

    def param_dims(self, spec: ModelSpec) -> dict[str, tuple[str, ...]]:
        pair = (dims.STAGE, dims.FEATURE)
        return {"mu": pair, "sigma": pair}

    def data(self, spec: ModelSpec, features: np.ndarray) -> dict[str, np.ndarray]:
        """Data containers: ``design`` (T, 3D) and ``offset`` (T,) (:func:`gaussian_design`)."""
        design, offset = gaussian_design(*masked_observations(features))
        return {"design": design, "offset": offset}

    def add_priors(self, spec: ModelSpec, feature_names: list[str]) -> dict:
        """Register ``mu`` (from ``mu_order`` / ``mu_other`` and, with a compulsion feature,
        ``mu_order_ff`` / ``mu_compulsion_ff`` / ``compulsion_gap``) and ``sigma`` in the
        current model."""
        import pymc as pm
        import pytensor.tensor as pt

        order_idx, comp_idx, other_idx = _feature_roles(spec, feature_names)
        k = spec.n_stages
        ordered = pm.distributions.transforms.ordered
        cols = [None] * len(feature_names)
        if comp_idx is None:
            mu_order = pm.Normal("mu_order", mu=0.0, sigma=spec.mu_prior_sd, dims=dims.STAGE,
                                 transform=ordered, initval=np.linspace(-1.5, 1.5, k))
            cols[order_idx] = mu_order
        else:
            ff, ranked = _ranked_stages(spec)
            mu_order = pm.Normal("mu_order", mu=0.0, sigma=spec.mu_prior_sd,
                                 dims=dims.STAGE_RANKED, transform=ordered,
                                 initval=np.linspace(-1.5, 1.5, k - 1))
            mu_order_ff = pm.Normal("mu_order_ff", mu=0.0, sigma=spec.mu_prior_sd)
            mu_comp_ff = pm.Normal("mu_compulsion_ff", mu=0.0, sigma=spec.mu_prior_sd)
            gap = pm.Gamma("compulsion_gap", alpha=2.0, beta=1.0, dims=dims.STAGE_RANKED)
            order_col, comp_col = [None] * k, [None] * k
            order_col[ff], comp_col[ff] = mu_order_ff, mu_comp_ff
            for j, stage in enumerate(ranked):
                order_col[stage] = mu_order[j]
                comp_col[stage] = mu_comp_ff - gap[j]
            cols[order_idx] = pt.stack(order_col)
            cols[comp_idx] = pt.stack(comp_col)
        if other_idx:
            mu_other = pm.Normal("mu_other", mu=0.0, sigma=spec.mu_prior_sd,
                                 dims=(dims.STAGE, dims.FEATURE_OTHER))
            for j, d in enumerate(other_idx):
                cols[d] = mu_other[:, j]
        mu = pm.Deterministic("mu", pt.stack(cols, axis=1), dims=(dims.STAGE, dims.FEATURE))
        sigma = pm.Gamma("sigma", alpha=2.0, beta=2.0, dims=(dims.STAGE, dims.FEATURE))
        return {"mu": mu, "sigma": sigma}

    def start(self, spec: ModelSpec, feature_names: list[str], mu: np.ndarray,
              sigma: np.ndarray) -> dict[str, np.ndarray]:
        """Initial values of the free variables from stage means and scales (K, D) whose
        stages are already labelled by :func:`identification_order`."""
        order_idx, comp_idx, other_idx = _feature_roles(spec, feature_names)
        start = {"sigma": np.maximum(sigma, _MIN_SIGMA)}
        if comp_idx is None:
            ranked, n = np.arange(spec.n_stages), spec.n_stages
        else:
            ff, ranked = _ranked_stages(spec)
            n = len(ranked)
            start["mu_order_ff"] = np.asarray(mu[ff, order_idx])
            start["mu_compulsion_ff"] = np.asarray(mu[ff, comp_idx])
            start["compulsion_gap"] = np.maximum(mu[ff, comp_idx] - mu[ranked, comp_idx],
                                                 _MIN_GAP)
        # strictly increasing means on the ordering feature (the ordered transform requires it)
        start["mu_order"] = np.sort(mu[ranked, order_idx]) + np.arange(n) * 1e-3
        if other_idx:
            start["mu_other"] = mu[:, other_idx]
        return start

    def n_features(self, data: dict) -> int:
        return int(data["design"].shape[-1]) // 3

    def check(self, spec: ModelSpec, params: dict, data: dict) -> None:
        """Raise ``ValueError`` naming the parameter unless the NumPy values are valid."""
        k, d = spec.n_stages, self.n_features(data)
        mu, sigma = np.asarray(params["mu"]), np.asarray(params["sigma"])
        if mu.shape[-2:] != (k, d) or sigma.shape != mu.shape:
            raise ValueError(f"mu and sigma must both have shape (..., K, D) = (..., {k}, {d}); "
                             f"got {mu.shape} and {sigma.shape}")
        if not np.isfinite(mu).all():
            raise ValueError("mu must be finite in every draw")
        if not (np.isfinite(sigma).all() and (sigma > 0).all()):
            raise ValueError("sigma must be finite and > 0 in every draw")

    def log_lik(self, spec: ModelSpec, params: dict, data: dict, xp=np):
        """``log p(y_t | stage_t = k)``, shape (..., T, K)."""
        return gaussian_loglik(data["design"], data["offset"], params["mu"], params["sigma"],
                               xp=xp)

    def sample(self, spec: ModelSpec, params: dict, stages: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """Observables drawn from ``p(y_t | stage_t)`` along given stage paths.

        ``params`` hold S draws (``mu``, ``sigma`` of shape (S, K, D); ``nu`` (S, K) for
        Student-t), ``stages`` (S, T) one path per draw; returns (S, T, D) with ``y[s, t, d] =
        mu[s, k, d] + sigma[s, k, d] e`` for ``k = stages[s, t]``, independent ``e`` standard
        normal (Gaussian) or standard Student-t with ``nu[s, k]`` degrees of freedom.
        """
        loc, scale = self._stage_values(params, stages)
        return loc + scale * self._noise(params, stages, loc.shape, rng)

    @staticmethod
    def _stage_values(params: dict, stages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(stages.shape[0])[:, None]
        return params["mu"][rows, stages], params["sigma"][rows, stages]

    def _noise(self, params: dict, stages: np.ndarray, shape, rng) -> np.ndarray:
        return rng.standard_normal(shape)


class StudentTEmission(GaussianEmission):
    """Independent Student-t observables given the stage; ``nu[k] ~ Gamma(2, 0.1)`` (mean 20)
    besides the Gaussian component's priors on ``mu`` and ``sigma``."""

    name = "student_t"

    def param_names(self, spec: ModelSpec) -> tuple[str, ...]:
        return ("mu", "sigma", "nu")

    def param_dims(self, spec: ModelSpec) -> dict[str, tuple[str, ...]]:
        return {**super().param_dims(spec), "nu": (dims.STAGE,)}

    def data(self, spec: ModelSpec, features: np.ndarray) -> dict[str, np.ndarray]:
        """Data containers: ``y0`` and ``mask`` (T, D) (:func:`masked_observations`)."""
        y0, mask = masked_observations(features)
        return {"y0": y0, "mask": mask}

    def add_priors(self, spec: ModelSpec, feature_names: list[str]) -> dict:
        import pymc as pm

        params = super().add_priors(spec, feature_names)
        params["nu"] = pm.Gamma("nu", alpha=2.0, beta=0.1, dims=dims.STAGE)
        return params

    def start(self, spec: ModelSpec, feature_names: list[str], mu: np.ndarray,
              sigma: np.ndarray) -> dict[str, np.ndarray]:
        return {**super().start(spec, feature_names, mu, sigma),
                "nu": np.full(spec.n_stages, 10.0)}

    def n_features(self, data: dict) -> int:
        return int(data["y0"].shape[-1])

    def check(self, spec: ModelSpec, params: dict, data: dict) -> None:
        super().check(spec, params, data)
        nu = np.asarray(params["nu"])
        if nu.shape[-1:] != (spec.n_stages,) or not (np.isfinite(nu).all() and (nu > 0).all()):
            raise ValueError(f"nu must be finite, > 0 and of shape (..., {spec.n_stages})")

    def log_lik(self, spec: ModelSpec, params: dict, data: dict, xp=np):
        if xp is np:
            from scipy.special import gammaln
        else:
            gammaln = xp.gammaln
        return emission_loglik(data["y0"], data["mask"], params["mu"], params["sigma"],
                               params["nu"], xp=xp, gammaln=gammaln)

    def _noise(self, params: dict, stages: np.ndarray, shape, rng) -> np.ndarray:
        """Standard Student-t noise with the stage's ``nu`` (``y = mu + sigma * t_nu``)."""
        nu = params["nu"][np.arange(stages.shape[0])[:, None], stages]  # (S, T)
        return rng.standard_t(np.broadcast_to(nu[..., None], shape))


#: The emission components by ``ModelSpec.emission``.
EMISSION_COMPONENTS = {"gaussian": GaussianEmission(), "student_t": StudentTEmission()}
