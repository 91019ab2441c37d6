"""Per-draw stage probabilities, integrated over the parameter posterior (plain-array layer).

For every posterior draw theta^(s) the HMM kernels give

- filtered  ``Pr(stage_t = k | y_1..y_t, theta^(s))``,
- smoothed  ``Pr(stage_t = k | y_1..y_T, theta^(s))``,
- one-step predictive log density ``log p(y_t | y_1..y_{t-1}, theta^(s))``.

Averaging over draws gives the posterior probabilities ``Pr(stage_t = k | y_1..y_t)`` and
``Pr(stage_t = k | y_1..y_T)`` with the parameter uncertainty integrated out; the spread of the
per-draw values across draws (quantiles) shows how much of that probability is parameter
uncertainty. Draws are processed in chunks, so memory grows with the number of draws kept for
quantiles, not with all draws.

The functions here never see the emission or transition model: they take ``terms``, a callable
``terms(lo, hi)`` returning the kernel inputs of the draws ``lo..hi-1``, which a fit builds
with :func:`stressflow.models.evaluate.evaluate_draws` (the one evaluator of the model).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from stressflow.models.numerics import kernels

__all__ = [
    "FilteredDraws",
    "StageDraws",
    "draw_quantiles",
    "filter_forward",
    "quantile_draw_index",
    "stage_probabilities",
]


@dataclass
class StageDraws:
    """Stage probabilities accumulated over posterior draws (S = number of draws).

    Attributes
    ----------
    filtered_mean, smoothed_mean : ndarray (T, K)
        Posterior means ``Pr(stage_t = k | y_1..y_t)`` and ``Pr(stage_t = k | y_1..y_T)``.
    filtered_q, smoothed_q : ndarray (Q, T, K)
        Quantiles across draws of the per-draw probabilities, from the draws in ``q_index``.
    chain_smoothed_mean : ndarray (C, T, K)
        Per-chain means of the smoothed probabilities (for the label-agreement check).
    log_norm : ndarray (S, T) or None
        ``log p(y_t | y_1..y_{t-1}, theta^(s))`` per draw (pointwise log-likelihood).
    filtered_draws, smoothed_draws : ndarray (S, T, K) float32 or None
        Per-draw probabilities, only when requested.
    filtered_last : ndarray (S, K) or None
        ``Pr(stage_T = k | y_1..y_T, theta^(s))`` per draw: the filter's state at the last day,
        from which :func:`filter_forward` continues exactly.
    filtered_group_q : dict of str to ndarray (Q, T) float32
        For each requested group of stages G, quantiles across draws of the per-draw
        ``Pr(stage_t in G | y_1..y_t, theta^(s))`` (a quantile of a sum is not the sum of the
        per-stage quantiles, so it is computed from the per-draw sums).
    """

    filtered_mean: np.ndarray
    smoothed_mean: np.ndarray
    filtered_q: np.ndarray
    smoothed_q: np.ndarray
    chain_smoothed_mean: np.ndarray
    log_norm: np.ndarray | None
    filtered_draws: np.ndarray | None
    smoothed_draws: np.ndarray | None
    filtered_last: np.ndarray | None = None
    filtered_group_q: dict[str, np.ndarray] = field(default_factory=dict)


def quantile_draw_index(n_draws: int, max_draws: int) -> np.ndarray:
    """Evenly thinned indices of at most ``max_draws`` of ``n_draws`` flattened draws."""
    if n_draws <= max_draws:
        return np.arange(n_draws)
    return np.unique(np.linspace(0, n_draws - 1, max_draws).round().astype(np.int64))


def stage_probabilities(
    terms,
    n_draws: int,
    shape: tuple[int, int],
    chain_of_draw: np.ndarray,
    *,
    quantiles: tuple[float, ...] = (0.05, 0.5, 0.95),
    max_quantile_draws: int = 1000,
    keep_log_norm: bool = True,
    keep_draws: bool = False,
    chunk: int = 16,
    filtered_groups: Mapping[str, Sequence[int]] | None = None,
) -> StageDraws:
    """Filtered and smoothed stage probabilities for every draw, and their summaries.

    Parameters
    ----------
    terms : callable
        ``terms(lo, hi) -> (log_init (K,), log_trans, log_lik (hi-lo, T, K))`` for the draws
        ``lo..hi-1``, with ``log_trans`` of shape (hi-lo, K, K) or (hi-lo, T-1, K, K)
        (:func:`stressflow.models.evaluate.evaluate_draws`).
    n_draws : int
        Number of posterior draws S.
    shape : (T, K)
        Number of days and stages.
    chain_of_draw : ndarray (S,) int
        Chain index of each flattened draw.
    filtered_groups : mapping of str to sequence of int, optional
        Groups of stage indices G whose per-draw filtered probability
        ``Pr(stage_t in G | y_1..y_t, theta^(s))`` gets its own quantiles
        (``StageDraws.filtered_group_q``).
    """
    n_t, n_stages = shape
    n_chains = int(chain_of_draw.max()) + 1
    q_index = quantile_draw_index(n_draws, max_quantile_draws)
    q_pos = np.full(n_draws, -1)
    q_pos[q_index] = np.arange(len(q_index))
    filt_keep = np.empty((len(q_index), n_t, n_stages), dtype=np.float32)
    smooth_keep = np.empty((len(q_index), n_t, n_stages), dtype=np.float32)
    chain_count = np.bincount(chain_of_draw, minlength=n_chains)
    log_norm = np.empty((n_draws, n_t)) if keep_log_norm else None
    filt_draws = np.empty((n_draws, n_t, n_stages), dtype=np.float32) if keep_draws else None
    smooth_draws = np.empty((n_draws, n_t, n_stages), dtype=np.float32) if keep_draws else None
    groups = {
        name: np.asarray(idx, dtype=np.int64) for name, idx in (filtered_groups or {}).items()
    }
    group_keep = {name: np.empty((len(q_index), n_t), dtype=np.float32) for name in groups}
    filtered_last = np.empty((n_draws, n_stages))

    def work(lo, hi):
        """Smooth draws lo..hi-1; returns this chunk's sums (the rest is written in place at
        the draws' own rows, which no other chunk touches)."""
        log_init, log_trans, log_lik = terms(lo, hi)
        smoothed, filtered, ln = kernels.smooth_many(
            log_init, log_trans, log_lik, log_norm=log_norm is not None)
        chains = chain_of_draw[lo:hi]
        c_sum = {int(c): smoothed[chains == c].sum(axis=0) for c in np.unique(chains)}
        if log_norm is not None:
            log_norm[lo:hi] = ln
        filtered_last[lo:hi] = filtered[:, -1]
        pos = q_pos[lo:hi]
        sel = pos >= 0
        if sel.any():
            kept = filtered[sel]
            filt_keep[pos[sel]] = kept
            smooth_keep[pos[sel]] = smoothed[sel]
            for name, idx in groups.items():
                group_keep[name][pos[sel]] = kept[:, :, idx].sum(axis=-1)
        if keep_draws:
            filt_draws[lo:hi] = filtered
            smooth_draws[lo:hi] = smoothed
        return filtered.sum(axis=0), smoothed.sum(axis=0), c_sum

    filt_sum = np.zeros((n_t, n_stages))
    smooth_sum = np.zeros((n_t, n_stages))
    chain_sum = np.zeros((n_chains, n_t, n_stages))
    for f_sum, s_sum, c_sum in _map_chunks(work, n_draws, chunk):
        filt_sum += f_sum
        smooth_sum += s_sum
        for c, total in c_sum.items():
            chain_sum[c] += total
    q = np.asarray(quantiles, dtype=np.float64)
    return StageDraws(
        filtered_mean=filt_sum / n_draws,
        smoothed_mean=smooth_sum / n_draws,
        filtered_q=draw_quantiles(filt_keep, q),
        smoothed_q=draw_quantiles(smooth_keep, q),
        chain_smoothed_mean=chain_sum / chain_count[:, None, None],
        log_norm=log_norm,
        filtered_draws=filt_draws,
        smoothed_draws=smooth_draws,
        filtered_last=filtered_last,
        filtered_group_q={name: draw_quantiles(keep, q) for name, keep in group_keep.items()},
    )


def _n_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _map_chunks(fn, n_items: int, chunk: int):
    """Yield ``fn(lo, hi)`` for each chunk in chunk order, the chunks run on a thread pool.

    The kernels release the GIL, so the chunks run in parallel; results are yielded in chunk
    order as they are consumed, so a reduction over them is the same whatever the thread timing
    and only the chunks in flight are held in memory.
    """
    bounds = [(lo, min(lo + chunk, n_items)) for lo in range(0, n_items, chunk)]
    n_threads = _n_threads()
    if len(bounds) <= 1 or n_threads == 1:
        for lo, hi in bounds:
            yield fn(lo, hi)
        return
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        pending = []
        for b in bounds:
            pending.append(pool.submit(fn, *b))
            if len(pending) > 2 * n_threads:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def draw_quantiles(keep: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles across draws (axis 0) of ``keep``, as float32 of shape ``(Q, *keep.shape[1:])``.

    The same numbers as ``np.quantile(keep, q, axis=0)`` (its default "linear" method), about
    4x faster and in bounded extra memory: blocks of about 4 million values are copied with the
    draws on the last, contiguous axis and sorted there (blocks in parallel) before
    ``np.quantile`` reads them.
    """
    n = keep.shape[0]
    flat = keep.reshape(n, -1)
    out = np.empty((len(q), flat.shape[1]), dtype=np.float32)

    def block(lo, hi):
        rows = np.ascontiguousarray(flat[:, lo:hi].T)
        rows.sort(axis=-1)
        out[:, lo:hi] = np.quantile(rows, q, axis=-1)

    for _ in _map_chunks(block, flat.shape[1], max(1, 4_000_000 // max(n, 1))):
        pass
    return out.reshape((len(q), *keep.shape[1:]))


@dataclass
class FilteredDraws:
    """Filtered stage probabilities of new days, continued from a per-draw filter state.

    S = number of draws, T = number of new days, K = number of stages, Q = number of
    quantiles.

    Attributes
    ----------
    filtered_mean : ndarray (T, K)
        ``Pr(stage_t = k | y_1..y_t)``, the mean over draws of the per-draw probabilities.
    filtered_q : ndarray (Q, T, K) float32
        Quantiles across draws of ``Pr(stage_t = k | y_1..y_t, theta^(s))``.
    filtered_group_q : dict of str to ndarray (Q, T) float32
        Quantiles across draws of ``Pr(stage_t in G | y_1..y_t, theta^(s))`` per group G.
    filtered_last : ndarray (S, K)
        ``Pr(stage_T = k | y_1..y_T, theta^(s))`` at the last new day: the new filter state.
    log_norm : ndarray (S, T)
        ``log p(y_t | y_1..y_{t-1}, theta^(s))`` of each new day.
    """

    filtered_mean: np.ndarray
    filtered_q: np.ndarray
    filtered_group_q: dict[str, np.ndarray]
    filtered_last: np.ndarray
    log_norm: np.ndarray


def filter_forward(
    terms,
    n_draws: int,
    state: np.ndarray,
    *,
    quantiles: tuple[float, ...] = (0.05, 0.5, 0.95),
    max_quantile_draws: int = 1000,
    filtered_groups: Mapping[str, Sequence[int]] | None = None,
    chunk: int = 64,
) -> FilteredDraws:
    """Continue the forward filter over n new days from each draw's last filtered state.

    With ``state[s, i] = Pr(stage_T = i | y_1..y_T, theta^(s))`` (the filter at the last day
    already processed), the first new day's predictive stage distribution is
    ``Pr(stage_{T+1} = j | y_1..y_T, theta^(s)) = sum_i state[s, i] P_s[i, j]`` (``P_s`` the
    move into day T+1) and the recursion then runs exactly as over the whole series, so the
    result equals filtering ``y_1..y_{T+n}`` from the start with the same draws (up to
    rounding, ~1e-15). Cost: O(S n K^2) for n new days, independent of T.

    Parameters
    ----------
    terms : callable
        ``terms(lo, hi) -> (log_trans, log_lik)`` for draws ``lo..hi-1``: ``log_lik`` (hi-lo, n,
        K) of the new days, and ``log_trans`` (hi-lo, K, K) for a constant P or (hi-lo, n, K, K)
        with entry m the move into new day m (from day T for m = 0).
    n_draws : int
    state : ndarray (S, K)
        ``Pr(stage_T = k | y_1..y_T, theta^(s))`` per draw.
    quantiles, max_quantile_draws
        As in :func:`stage_probabilities` (the same thinned draws enter the quantiles).
    filtered_groups : mapping of str to sequence of int, optional
        Groups of stage indices whose summed per-draw probability gets its own quantiles.

    Returns
    -------
    FilteredDraws
    """
    n_stages = state.shape[1]
    q_index = quantile_draw_index(n_draws, max_quantile_draws)
    q_pos = np.full(n_draws, -1)
    q_pos[q_index] = np.arange(len(q_index))
    groups = {
        name: np.asarray(idx, dtype=np.int64) for name, idx in (filtered_groups or {}).items()
    }
    filt_keep = group_keep = filt_sum = log_norm = None
    last = np.empty((n_draws, n_stages))
    for lo in range(0, n_draws, chunk):
        hi = min(lo + chunk, n_draws)
        log_trans, log_lik = terms(lo, hi)
        if filt_sum is None:
            n_t = log_lik.shape[1]
            filt_keep = np.empty((len(q_index), n_t, n_stages), dtype=np.float32)
            group_keep = {name: np.empty((len(q_index), n_t), dtype=np.float32)
                          for name in groups}
            filt_sum = np.zeros((n_t, n_stages))
            log_norm = np.empty((n_draws, n_t))
        for s in range(lo, hi):
            lt = np.ascontiguousarray(log_trans[s - lo], dtype=np.float64)
            first, rest = (lt, lt) if lt.ndim == 2 else (lt[0], np.ascontiguousarray(lt[1:]))
            # the same transition probabilities the kernels use: exp(log P)
            pred = np.asarray(state[s], dtype=np.float64) @ np.exp(first)
            with np.errstate(divide="ignore"):
                log_pred = np.log(pred)
            filtered, ln = kernels.filter_probs(log_pred, rest,
                                                np.ascontiguousarray(log_lik[s - lo]))
            filt_sum += filtered
            last[s] = filtered[-1]
            log_norm[s] = ln
            if q_pos[s] >= 0:
                filt_keep[q_pos[s]] = filtered
                for name, idx in groups.items():
                    group_keep[name][q_pos[s]] = filtered[:, idx].sum(axis=1)
    q = np.asarray(quantiles, dtype=np.float64)
    return FilteredDraws(
        filtered_mean=filt_sum / n_draws,
        filtered_q=draw_quantiles(filt_keep, q),
        filtered_group_q={name: draw_quantiles(keep, q) for name, keep in group_keep.items()},
        filtered_last=last,
        log_norm=log_norm,
    )
