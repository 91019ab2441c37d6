"""Long-run properties of a transition matrix ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``
and forward simulation of the stage chain.

Plain NumPy on arrays with any leading (draw) dimensions; no model, no labels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["simulate_chain", "stationary_distribution"]


def stationary_distribution(trans: np.ndarray) -> np.ndarray:
    """The stationary law ``pi`` of each transition matrix: ``pi P = pi``, ``sum_k pi_k = 1``,
    so ``pi_k`` is the long-run share of days in stage ``k`` implied by ``P`` alone.

    Parameters
    ----------
    trans : array (..., K, K)
        Row-stochastic matrices (rows sum to 1, entries >= 0; structural zeros allowed).

    Returns
    -------
    array (..., K)
        ``pi``, solved as the least-squares system ``[P' - I; 1'] pi = [0; 1]``, which has
        one exact solution when P has a single closed class (as every structure of
        :func:`stressflow.models.spec.allowed_transitions` does with positive allowed entries).

    Raises
    ------
    ValueError
        If ``trans`` is not square in its last two axes, or not finite row-stochastic
        (tolerance 1e-8).
    """
    trans = np.asarray(trans, dtype=np.float64)
    if trans.ndim < 2 or trans.shape[-1] != trans.shape[-2]:
        raise ValueError(f"trans must have shape (..., K, K), got {trans.shape}")
    if not (np.isfinite(trans).all() and (trans >= 0).all()
            and np.allclose(trans.sum(axis=-1), 1.0, atol=1e-8)):
        raise ValueError("trans must be finite, >= 0, with rows summing to 1")
    k = trans.shape[-1]
    flat = trans.reshape(-1, k, k)
    system = np.concatenate([np.swapaxes(flat, -1, -2) - np.eye(k),
                             np.ones((flat.shape[0], 1, k))], axis=1)
    rhs = np.zeros(k + 1)
    rhs[-1] = 1.0
    pis = np.stack([np.linalg.lstsq(a, rhs, rcond=None)[0] for a in system])
    pis = np.clip(pis, 0.0, None)  # rounding can leave -1e-17 on a never-visited stage
    return (pis / pis.sum(axis=-1, keepdims=True)).reshape(trans.shape[:-1])


def simulate_chain(log_init: np.ndarray, log_trans: np.ndarray, n_steps: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Stage paths drawn forward from the chain alone, one per draw of the transition law.

    ``stage_1 ~ exp(log_init)`` and ``Pr(stage_t = j | stage_{t-1} = i) = exp(log_trans)[i, j]``
    (the transitions into day t, ``t = 2..T``), with no observation: the paths are draws from
    the Markov chain's own law ``Pr(stage_1..stage_T | theta)``, not from the posterior of the
    stages given data.

    Parameters
    ----------
    log_init : array (K,)
        Log initial probabilities.
    log_trans : array (S, K, K) or (S, T-1, K, K)
        Log transition matrices of S draws, constant or one per transition (``T = n_steps``).
    n_steps : int
        Path length T (>= 1).
    rng : numpy.random.Generator
        Source of the uniforms (T * S of them, in time-major order: the same generator state
        gives the same paths).

    Returns
    -------
    ndarray of int8, shape (S, T)
        Stage indices.

    Raises
    ------
    ValueError
        On shapes that do not match, or probabilities that are not finite and row-normalised
        (tolerance 1e-6).
    """
    init = np.exp(np.asarray(log_init, dtype=np.float64))
    trans = np.exp(np.asarray(log_trans, dtype=np.float64))
    k = init.shape[-1]
    if init.ndim != 1 or trans.shape[-2:] != (k, k) or trans.ndim not in (3, 4):
        raise ValueError(f"log_init must be (K,) and log_trans (S, K, K) or (S, T-1, K, K); got "
                         f"{init.shape} and {trans.shape}")
    if trans.ndim == 4 and trans.shape[1] != n_steps - 1:
        raise ValueError(f"time-varying log_trans has {trans.shape[1]} transitions; a path of "
                         f"{n_steps} days needs {n_steps - 1}")
    for name, p in (("log_init", init), ("log_trans", trans)):
        if not (np.isfinite(p).all() and np.allclose(p.sum(axis=-1), 1.0, atol=1e-6)):
            raise ValueError(f"exp({name}) must be finite with rows summing to 1")
    n_draws = trans.shape[0]
    cum = np.cumsum(trans, axis=-1)
    u = rng.random((n_steps, n_draws))
    rows = np.arange(n_draws)

    def pick(c, ut):  # the stage whose cumulative interval holds ut (an impossible one never)
        return np.minimum((c <= (ut * c[:, -1])[:, None]).sum(axis=1), k - 1)

    out = np.empty((n_draws, n_steps), dtype=np.int8)
    state = pick(np.broadcast_to(np.cumsum(init), (n_draws, k)), u[0])
    out[:, 0] = state
    for t in range(1, n_steps):
        state = pick(cum[rows, state] if trans.ndim == 3 else cum[rows, t - 1, state], u[t])
        out[:, t] = state
    return out
