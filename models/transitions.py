"""Transition components: ``log Pr(stage_t = j | stage_{t-1} = i)``, constant or covariate-driven.

The prior expected duration of each stage is set by the Dirichlet concentrations
(:func:`dirichlet_concentration`: one stickiness for all stages, or per-stage durations).
Every component registers its priors in a PyMC model (:meth:`add_priors`), gives initial values
(:meth:`start`) and evaluates ``log_trans`` from parameter values (:meth:`log_trans`) for
``xp=numpy`` (arrays with any leading draw dimensions) or ``xp=pytensor.tensor`` (the graph).
All share the base matrix ``P`` with sticky Dirichlet rows (concentration 1 off the diagonal,
``1 + stickiness`` on it) restricted to the structure's allowed entries
(:func:`stressflow.models.spec.allowed_transitions`).

``constant``
    ``log_trans[i, j] = log P[i, j]``, shape (K, K).
``logit`` (multinomial logit per row, "stay" as the reference category, as statsmodels'
``exog_tvtp`` with a different reference)
    ``log_trans[t-1, i, j] = log P[i, j] + beta[:, i, j] . z_{t-1}
    - log sum_j' P[i, j'] exp(beta[:, i, j'] . z_{t-1})`` for t = 1..T-1 (0-based days), with
    ``beta[c, i, i] = 0``: the log-odds of moving i -> j against staying in i is
    ``log(P[i, j] / P[i, i]) + beta[:, i, j] . z_{t-1}``. One coefficient per covariate and
    allowed off-diagonal move; ``beta[c, i, j] ~ Normal(0, tvtp_prior_sd)``.
``ladder`` (one coefficient per covariate)
    ``log_trans[t-1, i, j] = log P[i, j] + sign(j - i) g_{t-1}
    - log sum_j' P[i, j'] exp(sign(j' - i) g_{t-1})`` with ``g_{t-1} = gamma . z_{t-1}``: a
    positive ``g`` multiplies the odds of every move up the ladder (toward forced flow) by
    ``exp(g)`` and of every move down by ``exp(-g)`` against staying, in every row. A positive
    ``gamma[c]`` therefore reads "covariate c pushes positions toward margin calls and forced
    flow" (stress builds), a negative one "it moves them back toward orderly". Moves into and
    out of the discretionary stage (outside the ladder) have sign 0: they are not tilted.
    ``gamma[c] ~ Normal(0, tvtp_prior_sd)``.

``z`` is the ``(T, C)`` array of standardised covariates (mean 0, sd 1 over the fit window), so
``P`` is the transition matrix at average covariate values, and zero coefficients give exactly
the constant model. Day t-1's covariates drive the move into day t: no look-ahead.
"""

from __future__ import annotations

import numpy as np
from stressflow.models import dims
from stressflow.models.spec import ModelSpec, allowed_transitions

__all__ = ["TRANSITION_COMPONENTS", "ConstantTransitions", "LogitTransitions",
           "LadderTransitions", "dirichlet_concentration", "ladder_signs"]

# Floor of allowed entries of a starting P (the simplex transform maps 0 to -inf).
_MIN_TRANS = 1e-4


def dirichlet_concentration(spec: ModelSpec) -> np.ndarray:
    """``(K, K)`` Dirichlet concentrations of the rows of P (forbidden entries are dropped from
    their row's Dirichlet): ``1 + stickiness`` on the diagonal and 1 elsewhere, or, with
    ``spec.stage_durations`` ``d_k``, ``1 + n (1 - 1/d_k)`` on the diagonal and
    ``1 + n / (d_k m_k)`` on each of row k's ``m_k`` allowed moves (``n`` =
    ``duration_strength``)."""
    k = spec.n_stages
    eye = np.eye(k, dtype=bool)
    if spec.stage_durations is None:
        return np.where(eye, 1.0 + spec.stickiness, 1.0)
    allowed = allowed_transitions(spec.transitions, k)
    d = np.asarray(spec.stage_durations)
    moves = (allowed & ~eye).sum(axis=1)
    n = spec.duration_strength
    off = 1.0 + n / (d * np.maximum(moves, 1))
    return np.where(eye, (1.0 + n * (1.0 - 1.0 / d))[:, None], off[:, None])


def ladder_signs(n_stages: int) -> np.ndarray:
    """``sign(j - i)`` on the ladder as a float ``(K, K)`` array: +1 above the diagonal, -1
    below; 0 in the row and column of a stage beyond the ladder (discretionary), whose moves
    the ladder's covariates do not tilt."""
    idx = np.arange(n_stages)
    signs = np.sign(idx[None, :] - idx[:, None]).astype(np.float64)
    n_ladder = dims.ladder_size(n_stages)
    signs[n_ladder:, :] = 0.0
    signs[:, n_ladder:] = 0.0
    return signs


def _masked_log(trans, allowed: np.ndarray, xp):
    """``log P`` on allowed entries, ``-inf`` elsewhere, without a ``log(0)`` in the gradient."""
    ones = xp.ones_like(trans)
    if xp is np:  # an allowed entry may be exactly 0 (e.g. driven there by EM): log gives -inf
        with np.errstate(divide="ignore"):
            return np.where(allowed, np.log(np.where(allowed, trans, ones)), -np.inf)
    return xp.where(allowed, xp.log(xp.where(allowed, trans, ones)), -np.inf)


def _normalise_rows(logits, xp):
    if xp is np:
        from scipy.special import logsumexp

        with np.errstate(invalid="ignore"):
            return logits - logsumexp(logits, axis=-1, keepdims=True)
    return logits - xp.logsumexp(logits, axis=-1, keepdims=True)


class ConstantTransitions:
    """One transition matrix P for every day (the sticky-Dirichlet HMM)."""

    name = "constant"

    def param_names(self, spec: ModelSpec) -> tuple[str, ...]:
        return ("P",)

    def param_dims(self, spec: ModelSpec) -> dict[str, tuple[str, ...]]:
        return {"P": (dims.STAGE_FROM, dims.STAGE_TO)}

    def data_names(self, spec: ModelSpec) -> tuple[str, ...]:
        return ()

    def add_priors(self, spec: ModelSpec) -> dict:
        """Register the Dirichlet rows of P in the current PyMC model; returns ``{"P": P}``."""
        import pymc as pm
        import pytensor.tensor as pt

        k = spec.n_stages
        allowed = allowed_transitions(spec.transitions, k)
        conc = dirichlet_concentration(spec)
        pair = (dims.STAGE_FROM, dims.STAGE_TO)
        if allowed.all():
            return {"P": pm.Dirichlet("P", a=conc, dims=pair)}
        trans = pt.zeros((k, k))
        for i, stage in enumerate(spec.stage_names):
            cols = np.flatnonzero(allowed[i])
            row = pm.Dirichlet(f"P_row_{stage}", a=conc[i, cols])
            trans = pt.set_subtensor(trans[i, cols], row)
        return {"P": pm.Deterministic("P", trans, dims=pair)}

    def start(self, spec: ModelSpec, trans: np.ndarray) -> dict[str, np.ndarray]:
        """Initial values of the free variables from a transition matrix ``trans`` (K, K)."""
        allowed = allowed_transitions(spec.transitions, spec.n_stages)
        trans = np.where(allowed, np.maximum(trans, _MIN_TRANS), 0.0)
        trans = trans / trans.sum(axis=1, keepdims=True)
        if allowed.all():
            return {"P": trans}
        return {f"P_row_{stage}": trans[i, allowed[i]] / trans[i, allowed[i]].sum()
                for i, stage in enumerate(spec.stage_names)}

    def check(self, spec: ModelSpec, params: dict) -> None:
        """Raise ``ValueError`` naming the parameter unless the NumPy values are valid."""
        k = spec.n_stages
        trans = np.asarray(params["P"])
        if trans.shape[-2:] != (k, k):
            raise ValueError(f"P must have shape (..., K, K) = (..., {k}, {k}), got {trans.shape}")
        if not np.isfinite(trans).all() or (trans < 0).any() or not np.allclose(
                trans.sum(axis=-1), 1.0, atol=1e-6):
            raise ValueError("every row of every transition matrix P must be >= 0 and sum to 1")
        for name in self.param_names(spec)[1:]:
            if not np.isfinite(np.asarray(params[name])).all():
                raise ValueError(f"the transition coefficients {name!r} must be finite")

    def log_trans(self, spec: ModelSpec, params: dict, data: dict, xp=np):
        """``log P``: shape (..., K, K) with the draw dimensions of ``params["P"]``."""
        allowed = allowed_transitions(spec.transitions, spec.n_stages)
        return _masked_log(params["P"], allowed, xp)


class _CovariateTransitions(ConstantTransitions):
    """Shared parts of the covariate-driven components (P is the matrix at z = 0)."""

    def data_names(self, spec: ModelSpec) -> tuple[str, ...]:
        return ("z",)

    def _shift(self, spec, params, z_prev, xp):
        raise NotImplementedError

    def log_trans(self, spec: ModelSpec, params: dict, data: dict, xp=np):
        """``log Pr(stage_t = j | stage_{t-1} = i, z_{t-1})``: shape (..., T-1, K, K)."""
        base = super().log_trans(spec, params, data, xp)
        z_prev = data["z"][:-1]
        shift = self._shift(spec, params, z_prev, xp)  # (..., T-1, K, K)
        return _normalise_rows(base[..., None, :, :] + shift, xp)


class LogitTransitions(_CovariateTransitions):
    """Multinomial logit per row with "stay" as the reference (see the module docstring)."""

    name = "logit"

    def param_names(self, spec: ModelSpec) -> tuple[str, ...]:
        return ("P", "beta")

    def param_dims(self, spec: ModelSpec) -> dict[str, tuple[str, ...]]:
        return {**super().param_dims(spec),
                "beta": (dims.COVARIATE, dims.STAGE_FROM, dims.STAGE_TO)}

    @staticmethod
    def free_moves(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of the allowed off-diagonal moves, each with coefficients."""
        allowed = allowed_transitions(spec.transitions, spec.n_stages)
        free = allowed & ~np.eye(spec.n_stages, dtype=bool)
        return np.nonzero(free)

    def add_priors(self, spec: ModelSpec) -> dict:
        import pymc as pm
        import pytensor.tensor as pt

        params = super().add_priors(spec)
        rows, cols = self.free_moves(spec)
        n_cov, k = len(spec.transition_covariates), spec.n_stages
        free = pm.Normal("beta_free", 0.0, spec.tvtp_prior_sd, shape=(n_cov, len(rows)))
        beta = pt.set_subtensor(pt.zeros((n_cov, k, k))[:, rows, cols], free)
        params["beta"] = pm.Deterministic(
            "beta", beta, dims=(dims.COVARIATE, dims.STAGE_FROM, dims.STAGE_TO))
        return params

    def start(self, spec: ModelSpec, trans: np.ndarray) -> dict[str, np.ndarray]:
        rows, _ = self.free_moves(spec)
        return {**super().start(spec, trans),
                "beta_free": np.zeros((len(spec.transition_covariates), len(rows)))}

    def _shift(self, spec, params, z_prev, xp):
        beta = params["beta"]
        if xp is np:
            return np.einsum("tc,...cij->...tij", z_prev, beta)
        return xp.tensordot(z_prev, beta, axes=[[1], [0]])


class LadderTransitions(_CovariateTransitions):
    """One coefficient per covariate shifting probability up or down the stage ladder."""

    name = "ladder"

    def param_names(self, spec: ModelSpec) -> tuple[str, ...]:
        return ("P", "gamma")

    def param_dims(self, spec: ModelSpec) -> dict[str, tuple[str, ...]]:
        return {**super().param_dims(spec), "gamma": (dims.COVARIATE,)}

    def add_priors(self, spec: ModelSpec) -> dict:
        import pymc as pm

        params = super().add_priors(spec)
        params["gamma"] = pm.Normal("gamma", 0.0, spec.tvtp_prior_sd, dims=dims.COVARIATE)
        return params

    def start(self, spec: ModelSpec, trans: np.ndarray) -> dict[str, np.ndarray]:
        return {**super().start(spec, trans),
                "gamma": np.zeros(len(spec.transition_covariates))}

    def _shift(self, spec, params, z_prev, xp):
        gamma = params["gamma"]
        signs = ladder_signs(spec.n_stages)
        if xp is np:
            g = np.einsum("tc,...c->...t", z_prev, gamma)
        else:
            g = xp.dot(z_prev, gamma)
        return g[..., None, None] * signs


#: The transition components by ``ModelSpec.transition_model``.
TRANSITION_COMPONENTS = {
    "constant": ConstantTransitions(),
    "logit": LogitTransitions(),
    "ladder": LadderTransitions(),
}
