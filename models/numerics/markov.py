"""Long-run properties of a transition matrix ``P[i, j] = Pr(stage_t = j | stage_{t-1} = i)``.

Plain NumPy on arrays with any leading (draw) dimensions; no model, no labels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stationary_distribution"]


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
