"""Forced flow with a phase-type (negative-binomial) stay: the stage as ``m`` phases in series.

One HMM state per stage gives a geometric stay: a one-day stay is the most likely, and long
stays keep real weight (at a mean of 8.7 days, ``Pr(stay >= 21) = 0.08``). The framework's
forced flow is "late and usually short". Written as ``m`` phases in series, each left with
probability ``1 - q`` per day, the stay is negative binomial: mean ``m / (1 - q)``, mode above
one day for ``m > 1``, and a lighter long tail (``m = 3``, mean 8.7: ``Pr(stay >= 21)`` about
0.03). The expanded-state form of a hidden semi-Markov model: Langrock & Zucchini (2011),
"Hidden Markov models with arbitrary state dwell-time distributions", Computational Statistics
& Data Analysis 55(1); Zucchini, MacDonald & Langrock (2016), *Hidden Markov Models for Time
Series*, 2nd ed., ch. 12.

Representation. The fit's ``P`` keeps its shape (K, K) and the convention ``P[i, j] =
Pr(stage_t = j | stage_{t-1} = i)`` for every row but forced flow's; row ``ff`` holds
``P[ff, ff] = q`` (each phase's stay) and ``P[ff, j] = (1 - q) e_j`` (the exits from the last
phase). The expanded chain has ``K + m - 1`` states: indices ``0..K-1`` as before (index
``ff`` is phase 1, where forced flow is entered) and phases ``2..m`` at ``K..K+m-2``; all
phases share forced flow's emission. ``m = 1`` is the plain HMM (every function an identity).
"""

from __future__ import annotations

import numpy as np

__all__ = ["expand", "collapse_probs", "collapse_paths", "collapse_xi", "ff_row",
           "expected_stay"]


def _phases(k: int, m: int, ff: int) -> list[int]:
    return [ff, *range(k, k + m - 1)]


def expand(log_init, trans, ll, m: int, ff: int):
    """``(log_init, log_trans, log_lik)`` of the expanded chain (``K + m - 1`` states).

    ``log_init`` (K,), ``trans`` (K, K) in the representation above, ``ll`` (T, K) with
    ``ll[t, k] = log p(y_t | stage_t = k)``; the phases repeat column ``ff``.
    """
    k = trans.shape[0]
    if m == 1:
        with np.errstate(divide="ignore"):
            return log_init, np.log(trans), ll
    ph = _phases(k, m, ff)
    q = trans[ff, ff]
    big = np.zeros((k + m - 1, k + m - 1))
    big[:k, :k] = trans
    big[ff] = 0.0
    for a, i in enumerate(ph):
        big[i, i] = q
        if a + 1 < m:
            big[i, ph[a + 1]] = 1.0 - q
    exits = trans[ff].copy()
    exits[ff] = 0.0
    big[ph[-1], :k] += exits
    init = np.full(k + m - 1, -np.inf)
    init[:k] = log_init
    with np.errstate(divide="ignore"):
        log_trans = np.log(big)
    return init, log_trans, np.concatenate([ll, np.repeat(ll[:, [ff]], m - 1, axis=1)], axis=1)


def collapse_probs(probs, k: int, ff: int):
    """(T, K) stage probabilities from (T, K + m - 1) state probabilities (phases summed)."""
    out = np.array(probs[:, :k], copy=True)
    out[:, ff] += probs[:, k:].sum(axis=1)
    return out


def collapse_paths(paths, k: int, ff: int):
    """Stage paths from expanded-state paths (every phase of forced flow -> ``ff``)."""
    return np.where(paths >= k, ff, paths)


def collapse_xi(xi, k: int, m: int, ff: int):
    """Expected transition counts in the fit's representation and the phase advances.

    Returns ``(counts, n_adv)``: ``counts`` (K, K) as the plain M step reads them, with row
    ``ff`` = (stays in any phase on the diagonal, exits from the last phase elsewhere), and
    ``n_adv`` = the expected number of moves from a phase to the next.
    """
    if m == 1:
        return xi, 0.0
    ph = _phases(k, m, ff)
    counts = np.array(xi[:k, :k], copy=True)
    counts[ff] = xi[ph[-1], :k]
    counts[ff, ff] = sum(xi[i, i] for i in ph)
    n_adv = float(sum(xi[ph[a], ph[a + 1]] for a in range(m - 1)))
    return counts, n_adv


def ff_row(counts, n_adv: float, conc, ok, ff: int):
    """MAP of forced flow's row under ``Dirichlet(conc[ff])`` on ``(q, (1 - q) e)``.

    The likelihood is ``q^stay (1 - q)^(n_adv) prod_j ((1 - q) e_j)^(exit_j)``, so
    ``q = (stay + c_ff - 1) / (that + n_adv + sum_j (exit_j + c_j - 1))`` and
    ``e_j`` is proportional to ``exit_j + c_j - 1``.
    """
    c = np.where(ok[ff], np.maximum(counts[ff] + conc[ff] - 1.0, 1e-10), 0.0)
    stay = c[ff]
    exits = c.copy()
    exits[ff] = 0.0
    q = stay / (stay + n_adv + exits.sum())
    row = (1.0 - q) * exits / exits.sum()
    row[ff] = q
    return row


def expected_stay(trans, m: int, ff: int) -> float:
    """Expected forced-flow stay in days, ``m / (1 - P[ff, ff])``."""
    return float(m / max(1.0 - trans[ff, ff], 1e-12))
