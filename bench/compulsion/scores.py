"""Scores of one variant: in sample (S&P 500 1985-2018, VW 2005-2012) and out of time.

Labels (``F-``, ``F+`` = forced; ``D`` = discretionary control; ``calm``; ``M`` ignored) are
read from ``data/datasets/crisis_catalogue.csv`` with pandas and used ONLY here, after the fit,
to score it; nothing is fitted or tuned on them.

Definitions (``D`` = an episode's trading days in the scored range with at least one
observable present; ``FF`` = forced_flow):

- ``p_compulsion = Pr(#{t in D : stage_t = FF} >= 0.5 |D| | y_1..y_T)`` under the EM point
  estimate, from ``N_PATHS`` FFBS paths (:func:`stressflow.models.numerics.kernels.sample_paths`
  and :func:`stressflow.inference.apps.episodes.compulsion_scores`);
- ``p_filtered`` (out of time) = ``mean_{t in D} Pr(stage_t = FF | y_1..y_t)`` with the
  parameters fitted on data up to the cut only;
- ``auc`` = Pr(score of a random F episode > score of a random D episode) (+ 1/2 for ties);
  ``brier`` = mean over F and D episodes of ``(score - [label is F])^2``;
- ``ff_share`` = share of days with ``Pr(stage_t = FF | y_1..y_T) > 0.5``; ``ff_mean`` its
  mean over all days; ``calm2017``/``calm0506`` its mean over calendar 2017 / 2005-2006;
  ``ff_duration`` = the expected forced-flow stay, ``m / (1 - P[FF, FF])`` days with ``m``
  phases (:mod:`.dwell`; ``m = 1``: the plain HMM).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from stressflow.inference.apps.episodes import compulsion_scores
from stressflow.models.numerics import kernels

from . import dwell
from .em import FF, Design, fit_em, log_lik
from .features import US_ONLY, standardise

__all__ = ["CATALOGUE", "N_PATHS", "load_labels", "fit_window", "in_sample", "out_of_time",
           "vw_score", "auc_brier"]

CATALOGUE = Path(__file__).resolve().parents[2] / "data" / "datasets" / "crisis_catalogue.csv"
N_PATHS = 500
#: k-means seeds (x the 1-, 5- and 21-day windows = 6 EM starts, as the library's em_start) and
#: relative tolerance of the log posterior. With seed 0 alone (3 starts) some K = 5 variants end
#: in a different local optimum (see compulsion_screen.md, "Sensitivity to EM starts").
SEEDS = (0, 1)
TOL = 1e-7
FORCED = ("F-", "F+")
IN_SAMPLE = ("1985-01-01", "2018-12-31")
CUT = "2006-12-31"
VW_RANGE = ("2005-01-01", "2012-12-31")
STLFSI_PEAK = pd.Timestamp("2008-10-17")


def load_labels(market: str) -> pd.DataFrame:
    """Catalogue rows of ``market`` (pandas read, so the ``calm`` label is accepted)."""
    cat = pd.read_csv(CATALOGUE, dtype=str, keep_default_na=False)
    cat["start"] = pd.to_datetime(cat["start"])
    cat["end"] = pd.to_datetime(cat["end"])
    return cat[cat["market"] == market].reset_index(drop=True)


def _ar(z: pd.DataFrame):
    return z["ret"].to_numpy(), z[["ret_lag", "vret_lag"]].assign(one=1.0)[
        ["one", "ret_lag", "vret_lag"]].to_numpy()


def fit_window(raw: pd.DataFrame, columns, design: Design, start, end):
    """Standardise ``columns`` (and the AR return inputs) on ``start..end``, fit by EM there.

    Returns ``(fit, z_all, ar_all)``: the fit, the standardised observables on ALL dates of
    ``raw`` and the AR inputs ``(r, x)`` on all dates (None without an AR emission). The
    return and its regressors are scaled by the sd of the return over the window; ``V`` in
    ``V_{t-1} r_{t-1}`` is the raw log abnormal volume.
    """
    z, _ = standardise(raw, columns, start, end)
    ar_all = None
    if design.ar:
        sd = float(raw.loc[pd.Timestamp(start): pd.Timestamp(end), "ret"].std())
        ar_all = _ar(raw[["ret", "ret_lag", "vret_lag"]] / sd)
        if not design.ar_intercept:  # b0 = 0: the constant regressor is zero (ridge keeps b0 0)
            ar_all[1][:, 0] = 0.0
    inside = (raw.index >= pd.Timestamp(start)) & (raw.index <= pd.Timestamp(end))
    ar_in = None if ar_all is None else (ar_all[0][inside], ar_all[1][inside])
    fit = fit_em(z.to_numpy()[inside], columns, design, ar=ar_in, seeds=SEEDS, tol=TOL)
    return fit, z, ar_all


def auc_brier(scores: pd.Series, labels: pd.Series) -> tuple[float, float]:
    """AUC of forced (F-, F+) vs D scores and the Brier score on those episodes (NaN if none)."""
    f = scores[labels.isin(FORCED)].to_numpy(dtype=float)
    d = scores[labels == "D"].to_numpy(dtype=float)
    if f.size == 0 or d.size == 0:
        return float("nan"), float("nan")
    diff = f[:, None] - d[None, :]
    auc = float(((diff > 0) + 0.5 * (diff == 0)).mean())
    brier = float(np.mean(np.r_[(f - 1.0) ** 2, d**2]))
    return auc, brier


def _hmm(fit, design: Design, ll):
    """``(log_init, log_trans, log_lik)`` of the fitted chain (phases expanded, :mod:`.dwell`);
    uniform initial distribution over the stages."""
    log_init = np.full(design.n_stages, -np.log(design.n_stages))
    return dwell.expand(log_init, fit.P, ll, design.ff_phases, FF)


def _episode_days(index: pd.DatetimeIndex, present: np.ndarray, start, end) -> np.ndarray:
    return np.flatnonzero((index >= start) & (index <= end) & present)


def smoothed_in_sample(raw: pd.DataFrame, columns, design: Design, n_paths: int = N_PATHS,
                       rng_seed: int = 0):
    """EM fit on 1985-2018 and its posterior there: ``(fit, dates, y, gamma, paths)`` with the
    standardised observables ``y`` (T, D), ``gamma[t, k] = Pr(stage_t = k | y_1..y_T)`` at the
    point estimate and ``n_paths`` FFBS paths (n_paths, T)."""
    fit, z, ar = fit_window(raw, columns, design, *IN_SAMPLE)
    inside = (raw.index >= pd.Timestamp(IN_SAMPLE[0])) & (raw.index <= pd.Timestamp(IN_SAMPLE[1]))
    y = z.to_numpy()[inside]
    ar_in = None if ar is None else (ar[0][inside], ar[1][inside])
    hmm = _hmm(fit, design, log_lik(fit, y, ar_in))
    k = design.n_stages
    gamma = dwell.collapse_probs(kernels.smooth(*hmm)[0], k, FF)
    paths = dwell.collapse_paths(
        kernels.sample_paths(*hmm, n_paths, np.random.default_rng(rng_seed)), k, FF)
    return fit, raw.index[inside], y, gamma, paths


def in_sample(raw: pd.DataFrame, columns, design: Design, market: str = "sp500",
              rng_seed: int = 0) -> tuple[dict, pd.DataFrame, object]:
    """Fit on 1985-2018 and score every catalogue episode of ``market``.

    Returns ``(summary, episodes, fit)``: ``summary`` holds auc, brier, ff_share, ff_mean,
    calm2017, calm0506, ff_duration, log_post, loglik; ``episodes`` one row per episode with
    ``p_compulsion`` (Pr(#{t in D: stage_t = FF} >= 0.5 |D| | y_1..y_T)).
    """
    fit, idx, y, gamma, paths = smoothed_in_sample(raw, columns, design, N_PATHS, rng_seed)
    present = np.isfinite(y).any(axis=1)
    labels = load_labels(market)
    rows = []
    for _, ep in labels.iterrows():
        days = _episode_days(idx, present, ep["start"], ep["end"])
        if days.size == 0:
            continue
        sc = compulsion_scores(paths, np.zeros(N_PATHS, dtype=np.int64), days)
        rows.append({"episode": ep["episode"], "expected": ep["expected"], "days": days.size,
                     "p_compulsion": sc["p_compulsion"],
                     "ff_mean_smoothed": float(gamma[days, FF].mean())})
    eps = pd.DataFrame(rows)
    auc, brier = auc_brier(eps["p_compulsion"], eps["expected"])
    g = pd.Series(gamma[:, FF], index=idx)
    summary = {
        "auc": auc, "brier": brier,
        "ff_share": float((g > 0.5).mean()), "ff_mean": float(g.mean()),
        "calm2017": float(g.loc["2017"].mean()),
        "calm0506": float(g.loc["2005":"2006"].mean()),
        "ff_duration": dwell.expected_stay(fit.P, design.ff_phases, FF),
        "log_post": fit.log_post, "loglik": fit.loglik,
    }
    return summary, eps, fit


def vw_score(raw_vw: pd.DataFrame, columns, design: Design) -> tuple[float, str]:
    """p_compulsion of the VW squeeze from a fit on VW 2005-2012 (US-only columns dropped).

    Returns ``(p_compulsion, note)``; the note lists the dropped columns.
    """
    cols = [c for c in columns if c not in US_ONLY]
    dropped = [c for c in columns if c in US_ONLY]
    d = design
    fit, z, ar = fit_window(raw_vw, cols, d, *VW_RANGE)
    inside = raw_vw.index >= pd.Timestamp(VW_RANGE[0])
    inside &= raw_vw.index <= pd.Timestamp(VW_RANGE[1])
    idx = raw_vw.index[inside]
    y = z.to_numpy()[inside]
    ar_in = None if ar is None else (ar[0][inside], ar[1][inside])
    paths = dwell.collapse_paths(kernels.sample_paths(
        *_hmm(fit, d, log_lik(fit, y, ar_in)), N_PATHS, np.random.default_rng(0)), d.n_stages, FF)
    ep = load_labels("vw").iloc[0]
    days = _episode_days(idx, np.isfinite(y).any(axis=1), ep["start"], ep["end"])
    sc = compulsion_scores(paths, np.zeros(N_PATHS, dtype=np.int64), days)
    return float(sc["p_compulsion"]), ("dropped " + ",".join(dropped)) if dropped else ""


def _crossing(f: pd.Series, idx: pd.DatetimeIndex, start: str):
    """First day in ``start..2008-12-31`` with ``f > 0.5`` and its lead in trading days on the
    STLFSI peak week's Friday (positive = earlier); ``(None, None)`` if there is none."""
    part = f.loc[start:"2008-12-31"]
    above = part[part > 0.5]
    if not len(above):
        return None, None
    cross = above.index[0]
    lead = int(((idx > cross) & (idx <= STLFSI_PEAK)).sum()) - int(
        ((idx > STLFSI_PEAK) & (idx <= cross)).sum())
    return cross.strftime("%Y-%m-%d"), lead


def out_of_time(raw: pd.DataFrame, columns, design: Design,
                market: str = "sp500") -> tuple[dict, pd.DataFrame]:
    """Fit on 1985..2006-12-31 only (standardisation too), filter forward to 2018.

    Returns ``(summary, episodes)``: per post-cut episode ``p_filtered`` = mean over its days
    of ``Pr(stage_t = FF | y_1..y_t)`` (parameters fixed at the pre-cut fit); the summary
    holds auc, brier on those, ``cross_2008`` (first 2008 date with filtered Pr(FF) > 0.5, or
    None), ``lead_days`` (trading days from it to the STLFSI peak week's Friday 2008-10-17;
    positive = earlier), the same from 2008-09-01 on (``cross_sep``, ``lead_sep``: the Lehman
    phase, since Pr(FF) may already be above 0.5 on 2008-01-02), ``oot_ff_share`` (share of
    2007-2018 days with filtered Pr(FF) > 0.5) and ``oot_calm2017`` (its mean over 2017).
    """
    fit, z, ar = fit_window(raw, columns, design, IN_SAMPLE[0], CUT)
    inside = raw.index >= pd.Timestamp(IN_SAMPLE[0])
    inside &= raw.index <= pd.Timestamp(IN_SAMPLE[1])
    idx = raw.index[inside]
    y = z.to_numpy()[inside]
    ar_in = None if ar is None else (ar[0][inside], ar[1][inside])
    filt, _ = kernels.filter_probs(*_hmm(fit, design, log_lik(fit, y, ar_in)))
    filt = dwell.collapse_probs(filt, design.n_stages, FF)
    f = pd.Series(filt[:, FF], index=idx)
    present = np.isfinite(y).any(axis=1)
    rows = []
    for _, ep in load_labels(market).iterrows():
        if ep["start"] <= pd.Timestamp(CUT):
            continue
        days = _episode_days(idx, present, ep["start"], ep["end"])
        if days.size:
            rows.append({"episode": ep["episode"], "expected": ep["expected"],
                         "p_filtered": float(filt[days, FF].mean())})
    eps = pd.DataFrame(rows)
    auc, brier = auc_brier(eps["p_filtered"], eps["expected"])
    cross, lead = _crossing(f, idx, "2008-01-01")
    cross_sep, lead_sep = _crossing(f, idx, "2008-09-01")
    summary = {"oot_auc": auc, "oot_brier": brier, "cross_2008": cross, "lead_days": lead,
               "cross_sep": cross_sep, "lead_sep": lead_sep,
               "oot_ff_share": float((f.loc["2007":] > 0.5).mean()),
               "oot_calm2017": float(f.loc["2017"].mean())}
    return summary, eps
