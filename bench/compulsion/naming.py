"""Which fitted stage gets which name: the screen's ordering rules (``Design.order``).

Rules: ``("rank", f)`` sorts by the stage mean of ``f``; ``("shortest", f)`` as ``rank`` but
the shorter-lived of the two highest is forced flow; ``("k5", f_ff, f_level)`` forced flow is
the stage with the highest mean of ``f_ff`` (``"k5sum"``: of the summed means of several
columns), the others sorted by ``f_level`` (the highest one(s) discretionary); ``("k5top",
f_ff, f_level)`` the most turbulent stage by ``f_level`` is discretionary and forced flow the
largest ``f_ff`` among the others; ``("k6break", f_ff, f_level)`` forced flow and a sixth
"break" stage are the two largest means of ``f_ff``. Split from :mod:`.em`, which re-applies
the rule after every M step.
"""

from __future__ import annotations

import numpy as np

__all__ = ["order_stages", "permute"]


def order_stages(design, mu, trans, columns) -> np.ndarray:
    """Permutation ``perm`` such that named stage ``i`` is current stage ``perm[i]``."""
    kind = design.order[0]
    if kind in ("rank", "shortest"):
        perm = np.argsort(mu[:, columns.index(design.order[1])], kind="stable")
        if kind == "shortest":
            a, b = perm[-2], perm[-1]
            if trans[a, a] < trans[b, b]:
                perm[-2], perm[-1] = b, a
        return perm
    if kind in ("k5", "k5sum"):  # k5sum: order[1] is a tuple of columns, their means summed
        keys = design.order[1] if kind == "k5sum" else (design.order[1],)
        keys = [c for c in keys if c in columns] or ["vol_surprise"]  # VW: no bond series
        ff = int(np.argmax(sum(mu[:, columns.index(c)] for c in keys)))
        rest = [i for i in range(mu.shape[0]) if i != ff]
        rest = sorted(rest, key=lambda i: mu[i, columns.index(design.order[2])])
        return np.array(rest[:3] + [ff] + rest[3:])
    if kind == "k5top":  # the most turbulent stage is discretionary, never forced flow (K >= 5)
        if len(mu) < 5:
            raise ValueError(f"the k5top rule needs at least 5 stages, got {len(mu)}")
        brk, level = mu[:, columns.index(design.order[1])], mu[:, columns.index(design.order[2])]
        top = int(np.argmax(level))
        ff = max((i for i in range(len(mu)) if i != top), key=lambda i: brk[i])
        rest = sorted((i for i in range(len(mu)) if i not in (ff, top)), key=lambda i: level[i])
        return np.array(rest[:3] + [ff] + rest[3:] + [top])
    if kind == "k6break":  # forced flow and the break: the two largest means of order[1]
        by_break = np.argsort(-mu[:, columns.index(design.order[1])], kind="stable")
        ff, brk = int(by_break[0]), int(by_break[1])
        rest = sorted((i for i in range(mu.shape[0]) if i not in (ff, brk)),
                      key=lambda i: mu[i, columns.index(design.order[2])])
        return np.array(rest[:3] + [ff] + rest[3:] + [brk])
    raise ValueError(f"unknown ordering rule {design.order!r}")


def permute(params, perm):
    """The EM parameters ``(mu, sigma, beta, s, P)`` with the stages in the order ``perm``."""
    mu, sigma, beta, s, trans = params
    trans = trans[np.ix_(perm, perm)]
    return (mu[perm], sigma[perm], None if beta is None else beta[perm],
            None if s is None else s[perm], trans)
