"""How well a compulsion score separates forced from discretionary catalogue episodes.

``F-``/``F+`` episodes are positives, ``D`` episodes negatives; ``M`` and ``calm`` rows are not
in them. AUC is the Mann-Whitney statistic ``mean over (f, d) pairs of 1[s_f > s_d] + 0.5 *
1[s_f = s_d]``; the Brier score is ``mean (s - y)^2`` with ``y = 1`` for F and 0 for D.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from stressflow.inference.apps import catalogue as _cat

__all__ = ["evaluation_metrics"]


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def evaluation_metrics(table: pd.DataFrame, *, prob_column: str, hi: float = 0.7,
                       lo: float = 0.3) -> dict:
    """How well ``table[prob_column]`` separates forced from discretionary episodes.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per episode with ``expected`` (a catalogue label) and ``prob_column`` (a
        probability in [0, 1], NaN = not scored). Not modified.
    prob_column : str
        The score's column, e.g. ``p_compulsion`` or ``p_filtered``.
    hi, lo : float
        Thresholds of the counts ``n_forced_ge_hi`` and ``n_discretionary_le_lo``.

    Returns
    -------
    dict
        ``score`` (the column), ``auc`` (Mann-Whitney AUC of F against D, ties 0.5; NaN with
        the reason in ``auc_note`` when a group is empty), ``brier`` (``mean (s - y)^2`` over
        scored F and D rows, y = 1 for F; NaN if none), ``n_forced``, ``n_discretionary``
        (scored F- / F+ and D rows), ``n_mixed``, ``n_calm``, ``n_unscored`` (F or D rows with
        a NaN score), ``n_forced_ge_hi`` (F with ``s >= hi``), ``n_discretionary_le_lo``
        (D with ``s <= lo``), ``hi``, ``lo``.

    Raises
    ------
    ValueError
        Missing columns, unknown labels, or a score outside [0, 1].
    """
    missing = [c for c in ("expected", prob_column) if c not in table.columns]
    if missing:
        raise ValueError(f"the episode table lacks column(s) {missing}")
    labels = table["expected"].astype(str)
    unknown = sorted(set(labels) - set(_cat.EXPECTED_LABELS))
    if unknown:
        raise ValueError(f"column expected has unknown label(s) {unknown}; known: "
                         f"{list(_cat.EXPECTED_LABELS)}")
    score = pd.to_numeric(table[prob_column], errors="coerce").to_numpy(dtype=np.float64)
    finite = np.isfinite(score)
    if ((score[finite] < 0) | (score[finite] > 1)).any():
        raise ValueError(f"column {prob_column} has values outside [0, 1]")
    forced = labels.isin(_cat.FORCED_LABELS).to_numpy()
    disc = (labels == "D").to_numpy()
    pos, neg = score[forced & finite], score[disc & finite]
    auc = _auc(pos, neg) if pos.size and neg.size else float("nan")
    note = " and ".join([*(["no forced (F-/F+) episode scored"] if not pos.size else []),
                         *(["no discretionary (D) episode scored"] if not neg.size else [])])
    both = np.concatenate([pos, neg])
    truth = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    return {
        "score": prob_column, "auc": auc, "auc_note": note,
        "brier": float(((both - truth) ** 2).mean()) if both.size else float("nan"),
        "n_forced": int(pos.size), "n_discretionary": int(neg.size),
        "n_mixed": int((labels == "M").sum()), "n_calm": int((labels == "calm").sum()),
        "n_unscored": int(((forced | disc) & ~finite).sum()),
        "n_forced_ge_hi": int((pos >= hi).sum()), "n_discretionary_le_lo": int((neg <= lo).sum()),
        "hi": hi, "lo": lo,
    }
