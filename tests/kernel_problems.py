"""Random HMM test problems shared by the kernel tests (fixed seeds, float64 log-space inputs).

``log_trans[i, j] = log Pr(s_t = j | s_{t-1} = i)`` with rows that are log-probability vectors;
the "sequential" structure forbids (``-inf``) all moves but i->i, i->i+1, i->i-1 and any->0.
"""

from __future__ import annotations

import numpy as np


def sequential_mask(k):
    """Stress builds one stage at a time: i->i, i->i+1, i->i-1 and any -> 0 are allowed."""
    i, j = np.indices((k, k))
    return (np.abs(i - j) <= 1) | (j == 0)


def random_log_trans(k, rng, structure="dense"):
    mask = np.ones((k, k), bool) if structure == "dense" else sequential_mask(k)
    w = rng.gamma(1.0, size=(k, k)) * mask
    with np.errstate(divide="ignore"):
        return np.log(w / w.sum(axis=1, keepdims=True))


def random_log_init(k, rng, structure="dense"):
    w = rng.gamma(1.0, size=k)
    if structure == "sequential" and k > 2:
        w[2:] = 0.0  # stress starts in one of the first two stages
    with np.errstate(divide="ignore"):
        return np.log(w / w.sum())


def random_problem(k, n_t, seed, structure="dense", scale=2.0):
    rng = np.random.default_rng(seed)
    li = random_log_init(k, rng, structure)
    lt = random_log_trans(k, rng, structure)
    ll = rng.normal(scale=scale, size=(n_t, k))
    return li, lt, ll


def paths_both_ways(li, lt, ll):
    """``(fast, exact)``: (logp, gamma, xi, alpha) from the fast linear-space path (None if it
    hands the call over) and from the exact log-space path, each called directly."""
    from stressflow.models.numerics import fast, logspace

    zero, zero2, vec = fast.specialise(li.shape[0])
    trans, ok = fast.transitions(lt, zero2, vec)
    fast_out = None
    if ok:
        alpha, emis, _, _, logp, ok = fast.forward_fast(li, trans, ll, zero, vec)
        if ok:
            gamma, xi, ok = fast.backward_fast(trans, alpha, emis, zero)
            fast_out = (logp, gamma, xi, alpha) if ok else None
    log_alpha, log_norm = logspace.forward_log(li, lt, ll)
    gamma, xi = logspace.backward_log(lt, ll, log_alpha)
    return fast_out, (log_norm.sum(), gamma, xi, logspace.exp_rows(log_alpha))
