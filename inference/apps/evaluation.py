"""Evaluation of compulsion scores against the crisis catalogue, in sample and out of time.

The catalogue's labels (:mod:`stressflow.inference.apps.catalogue`) are read only here, after
every fit; no threshold or parameter is chosen from them. Every score is reported, good or bad.

Two scores of one episode with days ``D`` (the fit's trading days in ``[start, end]`` with at
least one observable present; ``FF`` = ``forced_flow``):

``p_compulsion`` (in sample)
    ``Pr(#{t in D : stage_t = FF} >= 0.5 |D| | y_1..y_T)``, from FFBS paths of a fit to the
    whole sample (see :mod:`stressflow.inference.apps.episodes`): it uses data after the episode.
``p_filtered`` (out of time)
    ``mean_{t in D} Pr(stage_t = FF | y_1..y_t)``, the filtered probability averaged over the
    episode's days, from a fit whose data end at the cut, extended past it with
    :func:`stressflow.inference.apps.feed.update` (same posterior draws, no refit, no
    smoothing): each day's value uses only the observations up to that day and parameters
    fitted to data before the cut.

Metrics: :func:`stressflow.inference.apps.metrics.evaluation_metrics` (AUC and Brier score of F
against D episodes).
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.data.window import to_timestamp
from stressflow.inference.apps import catalogue as _cat
from stressflow.inference.apps.catalogue import CALM_MAX, agreement, fit_market, load_catalogue
from stressflow.inference.apps.metrics import evaluation_metrics
from stressflow.models import dims

__all__ = ["CALENDAR_PERIODS", "STLFSI_PEAK_WEEK_END", "STLFSI_SOURCE", "Evaluation",
           "SampleEvaluation", "evaluate_in_sample", "evaluate_out_of_time",
           "evaluation_metrics", "run_evaluation", "VW_WINDOW"]

#: Last day of the week in which the St. Louis Fed Financial Stress Index peaked in 2008.
STLFSI_PEAK_WEEK_END = pd.Timestamp("2008-10-17")
#: Where :data:`STLFSI_PEAK_WEEK_END` comes from.
STLFSI_SOURCE = ("St. Louis Fed Financial Stress Index (STLFSI), weekly; peak in the week ending "
                 "2008-10-17 (crisis_catalogue.csv, note of 'Lehman / GFC 2008')")
#: Calendar periods whose mean ``Pr(stage_t = forced_flow | ...)`` is reported when covered.
CALENDAR_PERIODS = {"2005-2006": ("2005-01-01", "2006-12-31"), "2017": ("2017-01-01", "2017-12-31")}
#: Default VW fit window: the whole bundled series. On 2005-2012 alone (2,040 days) the
#: default model did not converge (max R-hat 1.50, bulk ESS 8; the chains split the
#: discretionary and margin-pressure days differently); on 1997-2017 it does (R-hat 1.004).
VW_WINDOW = ("1997-01-01", "2017-10-31")
_SLACK = pd.Timedelta(days=5)  # a period is covered if the fit reaches within 5 days of its ends
_FF = "forced_flow"


@dataclasses.dataclass(frozen=True)
class SampleEvaluation:
    """One evaluation (in sample or out of time) of one fit: ``table`` has one row per scored
    catalogue episode, ``figures`` the summary figures, ``metrics`` :func:`evaluation_metrics`
    of the ``score`` column."""

    kind: str
    market: str
    score: str
    definition: str
    table: pd.DataFrame
    figures: dict
    metrics: dict

    def to_markdown(self) -> str:
        """The section as Markdown: definition, table, figures, metrics (every value)."""
        cols = ["episode", "expected", "start", "end", "n_days", self.score,
                *(f"{self.score}_q{q}" for q in ("05", "95")), "mean_forced", "max_filtered",
                "label", "agree"]
        lines = [f"### {self.kind}: {self.market}", "", self.definition, ""]
        lines.append(_md_table(self.table[[c for c in cols if c in self.table.columns]])
                     if len(self.table) else "(no catalogued episode in range)")
        lines += ["", "Figures:", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in self.figures.items()]
        lines += ["", f"Metrics of {self.score} (F-/F+ against D; M and calm excluded):", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in self.metrics.items() if k != "score"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


def _fmt(value) -> str:
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}"
    if isinstance(value, float | np.floating):
        return "NaN" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


def _md_table(frame: pd.DataFrame) -> str:
    rows = [[_fmt(v) if not isinstance(v, float | np.floating) or not np.isfinite(v)
             else f"{v:.3f}" for v in row] for row in frame.itertuples(index=False)]
    head = [str(c) for c in frame.columns]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def _forced(fit: xr.DataTree, kind: str) -> tuple[pd.Series, np.ndarray]:
    """``Pr(stage_t = forced_flow | ...)`` per day (``kind`` smoothed: given y_1..y_T; filtered:
    given y_1..y_t), shape (T,), and whether day t has an observable (bool, shape (T,))."""
    p = fit["stages"][kind].sel({dims.STAGE: _FF}).to_series()
    feats = fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE).values
    return p, np.isfinite(feats).any(axis=1)


def _period_figures(p: pd.Series, first: pd.Timestamp, what: str) -> dict:
    """Mean of ``p`` over each :data:`CALENDAR_PERIODS` entry covered by ``p``'s days on or
    after ``first``."""
    out, q = {}, p[p.index >= first]
    for name, (a, b) in CALENDAR_PERIODS.items():
        a, b = pd.Timestamp(a), pd.Timestamp(b)
        if len(q) and q.index[0] <= a + _SLACK and q.index[-1] >= b - _SLACK:
            out[f"mean {what} Pr(forced_flow), calendar {name}"] = float(q.loc[a:b].mean())
    return out


def _stage_law_figures(fit: xr.DataTree, prefix: str = "") -> dict:
    """Expected forced-flow duration and the stationary share of P (posterior mean, 5%, 95%)."""
    from stressflow.inference.postprocess.summaries import expected_durations, stationary_shares

    out = {}
    for name, table in ((f"{prefix}expected forced_flow duration (days)",
                         expected_durations(fit)),
                        (f"{prefix}stationary forced_flow share of P (pi P = pi)",
                         stationary_shares(fit))):
        d = table.loc[_FF]
        out |= {f"{name}, posterior mean": float(d["mean"]), f"{name}, 5%": float(d["q05"]),
                f"{name}, 95%": float(d["q95"])}
    return out


def _calm_figures(table: pd.DataFrame, column: str, what: str) -> dict:
    calm = table[table["expected"] == "calm"]
    return {f"mean {what} Pr(forced_flow), calm period {e!r} (agrees if < {CALM_MAX})": float(v)
            for e, v in zip(calm["episode"], calm[column], strict=True)}


def evaluate_in_sample(fit: xr.DataTree, *, market: str | None = None,
                       catalogue: pd.DataFrame | None = None, hi: float = 0.7, lo: float = 0.3,
                       n_draws: int | None = 200, paths_per_draw: int = 10,
                       seed: int = 0) -> SampleEvaluation:
    """Score every catalogued episode of ``market`` inside the fit, from the smoothed posterior.

    The table is :func:`~stressflow.inference.apps.catalogue.score_catalogue` (``p_compulsion =
    Pr(#{t in D : stage_t = FF} >= 0.5 |D| | y_1..y_T)``, its per-draw 5%/95% quantiles
    ``p_compulsion_q05``/``_q95``, ``mean_forced = mean_{t in D} Pr(stage_t = FF |
    y_1..y_T)``, ``agree``). Figures: the share of the fit's days with
    ``Pr(stage_t = FF | y_1..y_T) > 0.5``; that probability's mean over all days, over each
    calm period of the catalogue and over calendar 2005-2006 and 2017 when the fit covers them;
    the expected forced-flow duration ``1 / (1 - P[FF, FF])`` and the long-run forced-flow
    share implied by P alone (``pi_FF`` with ``pi P = pi``; posterior mean, 5%, 95%), beside
    which the smoothed share shows how far the emissions move days against the transition law.
    Metrics: :func:`evaluation_metrics` of ``p_compulsion``. Returns a
    :class:`SampleEvaluation` whose table has one row per episode. ``fit`` is not modified.
    """
    market = fit_market(fit, market)
    table = _cat.score_catalogue(fit, market=market, catalogue=catalogue, hi=hi, lo=lo,
                                 n_draws=n_draws, paths_per_draw=paths_per_draw,
                                 seed=seed)
    table = table.sort_values("start", kind="stable").reset_index(drop=True)
    p, _ = _forced(fit, "smoothed")
    figures = {"days": len(p), "first day": p.index[0], "last day": p.index[-1],
               "share of days with smoothed Pr(forced_flow) > 0.5": float((p > 0.5).mean()),
               "mean smoothed Pr(forced_flow), all days": float(p.mean())}
    figures |= _calm_figures(table, "mean_forced", "smoothed")
    figures |= _period_figures(p, p.index[0], "smoothed")
    figures |= _stage_law_figures(fit)
    definition = ("p_compulsion = Pr(#{t in D : stage_t = forced_flow} >= 0.5 |D| | y_1..y_T) "
                  "(FFBS paths of the fit to the whole sample; q05/q95 across posterior draws); "
                  "mean_forced = mean over D of Pr(stage_t = forced_flow | y_1..y_T); D = the "
                  "episode's trading days with an observation. Agreement: F-/F+ if p_compulsion "
                  f">= {hi}, D if <= {lo}, calm if mean_forced < {CALM_MAX}, M n/a.")
    return SampleEvaluation("in sample", market, "p_compulsion", definition, table, figures,
                            evaluation_metrics(table, prob_column="p_compulsion", hi=hi, lo=lo))


def evaluate_out_of_time(fit_to_cut: xr.DataTree, fit_updated: xr.DataTree, *, cut,
                         market: str | None = None, catalogue: pd.DataFrame | None = None,
                         hi: float = 0.7, lo: float = 0.3) -> SampleEvaluation:
    """Score the catalogued episodes after ``cut`` from filtered probabilities only.

    ``fit_updated`` is ``fit_to_cut`` (whose data end on or before ``cut``) extended past the
    cut by :func:`stressflow.inference.apps.feed.update`. An episode is scored when its
    ``start > cut`` and its ``end <=`` the last day of ``fit_updated``, by
    ``p_filtered = mean_{t in D} Pr(stage_t = forced_flow | y_1..y_t)`` (D: its trading days
    with an observation; no smoothing, no refit; ``max_filtered`` is the maximum over D).
    Agreement uses ``p_filtered`` for every label (calm: ``p_filtered < CALM_MAX``).

    Figures, over the days after the cut: the share with filtered ``Pr(forced_flow) > 0.5``,
    its mean, its mean over calendar 2005-2006 / 2017 when after the cut and covered; the
    cut fit's expected forced-flow duration; and the first day of 2008 with filtered
    ``Pr(stage_t = forced_flow | y_1..y_t) > 0.5`` against :data:`STLFSI_PEAK_WEEK_END`
    (positive lead = the model crossed before the peak week ended). Returns a
    :class:`SampleEvaluation` whose table has one row per episode after the cut (columns
    ``episode, market, expected, start, end, n_days, p_filtered, max_filtered, agree``).

    Raises
    ------
    ValueError
        If ``fit_to_cut`` has data after ``cut``, or ``fit_updated`` is not an update of it.
    """
    cut = to_timestamp(cut, "cut")
    market = fit_market(fit_to_cut, market)
    fitted = pd.DatetimeIndex(fit_to_cut["observed_data"][dims.TIME].values)
    if fitted[-1] > cut:
        raise ValueError(f"fit_to_cut has data up to {fitted[-1]:%Y-%m-%d}, after the cut "
                         f"{cut:%Y-%m-%d}: out-of-time scores would use fitted days")
    p, observed = _forced(fit_updated, "filtered")
    same = (fit_updated.attrs.get("data_hash") == fit_to_cut.attrs.get("data_hash")
            and len(p) >= len(fitted) and p.index[:len(fitted)].equals(fitted))
    if not same:
        raise ValueError("fit_updated is not fit_to_cut extended by feed.update (different data "
                         "hash or days)")
    cat = load_catalogue() if catalogue is None else catalogue
    after = cat[(cat["market"] == market) & (cat["start"] > cut) & (cat["end"] <= p.index[-1])]
    rows = []
    for ep in after.sort_values("start", kind="stable").itertuples(index=False):
        inside = (p.index >= ep.start) & (p.index <= ep.end) & observed
        vals = p[inside]
        score = float(vals.mean()) if len(vals) else float("nan")
        rows.append({"episode": ep.episode, "market": market, "expected": ep.expected,
                     "start": ep.start, "end": ep.end, "n_days": len(vals), "p_filtered": score,
                     "max_filtered": float(vals.max()) if len(vals) else float("nan"),
                     "agree": agreement(ep.expected, score, hi=hi, lo=lo, mean_forced=score)})
    cols = ["episode", "market", "expected", "start", "end", "n_days", "p_filtered",
            "max_filtered", "agree"]
    table = pd.DataFrame(rows, columns=cols)
    new = p[p.index > cut]
    figures = {"cut": cut, "last day": p.index[-1], "days after the cut": len(new),
               "share of days after the cut with filtered Pr(forced_flow) > 0.5":
                   float((new > 0.5).mean()) if len(new) else float("nan"),
               "mean filtered Pr(forced_flow), days after the cut":
                   float(new.mean()) if len(new) else float("nan")}
    figures |= _calm_figures(table, "p_filtered", "filtered")
    figures |= _period_figures(p, cut + pd.Timedelta(days=1), "filtered")
    figures |= _stage_law_figures(fit_to_cut, "cut fit: ")
    figures |= _crossing_2008(new)
    definition = ("p_filtered = mean over D of Pr(stage_t = forced_flow | y_1..y_t) (filtered, "
                  "parameters fitted to data up to the cut, extended by feed.update: no "
                  "smoothing, no refit); D = the episode's trading days with an observation; "
                  "only episodes starting after the cut. Agreement: F-/F+ if p_filtered >= "
                  f"{hi}, D if <= {lo}, calm if < {CALM_MAX}, M n/a.")
    return SampleEvaluation("out of time", market, "p_filtered", definition, table, figures,
                            evaluation_metrics(table, prob_column="p_filtered", hi=hi, lo=lo))


def _crossing_2008(p: pd.Series) -> dict:
    """Days of 2008 where ``p`` (filtered ``Pr(stage_t = forced_flow | y_1..y_t)``, days after
    the cut) is above 0.5, against :data:`STLFSI_PEAK_WEEK_END`; leads in trading days
    (positive = before the end of the peak week)."""
    year = p[(p.index >= "2008-01-01") & (p.index <= "2008-12-31")]
    if year.empty:
        return {"2008 crossing": "n/a (2008 is not after the cut inside the data)"}
    out = {"STLFSI peak week ending": STLFSI_PEAK_WEEK_END, "STLFSI source": STLFSI_SOURCE}
    above = (year > 0.5).to_numpy()
    before = np.concatenate([[p[p.index < year.index[0]].iloc[-1:].gt(0.5).any()], above[:-1]])
    for what, hit in (("first day of 2008 with filtered Pr(forced_flow) > 0.5", above),
                      ("first upward crossing of 0.5 in 2008 (p_{t-1} <= 0.5 < p_t)",
                       above & ~before)):
        if not hit.any():
            out[what] = "none in 2008"
            continue
        day = year.index[int(np.argmax(hit))]
        lead = int(((year.index > day) & (year.index <= STLFSI_PEAK_WEEK_END)).sum()
                   - ((year.index > STLFSI_PEAK_WEEK_END) & (year.index <= day)).sum())
        out[what] = f"{day:%Y-%m-%d} (lead {lead} trading days)"
    return out


def _start_record(fit: xr.DataTree) -> str:
    """The fit's EM start record and its chains' mean log density: the mode a score comes from
    (compare it across seeds; README, the model)."""
    from stressflow.inference.postprocess.diagnostics import start_check, start_text

    starts, hits, gap, _ = start_check(fit)
    logp = float(fit["sample_stats"]["logp"].mean())
    if starts is None:
        return f"chains' mean log density {logp:.1f}"
    return f"EM {start_text(starts, hits, gap)}; chains' mean log density {logp:.1f}"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Result of :func:`run_evaluation`: the in-sample evaluations by market, the out-of-time
    evaluation, the settings, the fit wall times and every warning the fits raised."""

    in_sample: dict
    out_of_time: SampleEvaluation
    settings: dict
    fit_warnings: tuple = ()

    def to_markdown(self) -> str:
        """Every table, figure and metric as Markdown."""
        lines = ["# stressflow evaluate", "",
                 "Labels were read after fitting; nothing was tuned on them. Settings:", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in self.settings.items()]
        lines += ["", "## In sample", ""]
        for ev in self.in_sample.values():
            lines += [ev.to_markdown(), ""]
        lines += ["## Out of time", "", self.out_of_time.to_markdown(), "", "## Fit warnings", ""]
        lines += [f"- {w}" for w in self.fit_warnings] or ["(none)"]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()


def _check_windows(jobs, spec) -> None:
    """Prepare the data of every fit before the first one samples, so that a window the prices,
    observables or transition covariates do not cover raises its ``DataError`` in seconds
    rather than after the earlier fits (the preparation is repeated by ``fit``)."""
    from stressflow.data import prepare
    from stressflow.inference.fitting.fit import prepare_options
    from stressflow.models.spec import ModelSpec

    options = prepare_options(ModelSpec() if spec is None else spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fits report their own warnings
        for name, a, b in jobs:
            prepare(name.split()[0], start=a, end=b, **options)


def run_evaluation(*, spec=None, cut="2006-12-31", start="1985-01-01", end="2018-12-31",
                   vw=VW_WINDOW, chains: int = 4, draws: int = 1000,
                   tune: int = 2000, seed: int = 0, progress: bool = False) -> Evaluation:
    """Fit, then evaluate: S&P 500 ``start..end`` and VW ``vw`` in sample (``vw=None`` skips
    it); S&P 500 ``start..cut`` then updated with the rows ``cut < t <= end`` (no refit) out
    of time. The catalogue is read after all fits. ``progress`` shows the sampler's bar and
    step messages on stderr.

    Raises
    ------
    ValueError
        If not ``start < cut < end``.
    """
    from stressflow.data import read_prices
    from stressflow.inference.apps.feed import update
    from stressflow.inference.fitting.fit import fit

    t_start, t_cut, t_end = (pd.Timestamp(x) for x in (start, cut, end))
    if not t_start < t_cut < t_end:
        raise ValueError(f"need start < cut < end, got {start}, {cut}, {end}")
    settings = {"start": t_start, "end": t_end, "cut": t_cut,
                "vw": "skipped" if vw is None else f"{vw[0]} .. {vw[1]}",
                "chains": chains, "draws": draws, "tune": tune, "seed": seed}
    kw = dict(spec=spec, chains=chains, draws=draws, tune=tune, seed=seed,
              progress_bar=progress, pointwise_loglik=False)
    jobs = [("sp500", start, end), ("sp500 to the cut", start, cut)]
    if vw is not None:
        jobs.insert(1, ("vw", vw[0], vw[1]))
    _check_windows(jobs, spec)
    fits, notes = {}, []
    for name, a, b in [*jobs, ("update", cut, end)]:
        if progress:
            print(f"stressflow evaluate: {name} {a} .. {b}", file=sys.stderr)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if name == "update":  # the rows after the cut, filtered with the cut fit's draws
                prices = read_prices("sp500")
                last = fits["sp500 to the cut"]["observed_data"][dims.TIME].values[-1]
                new = prices[(prices.index > last) & (prices.index <= t_end)]
                updated = update(fits["sp500 to the cut"], new)
            else:
                fits[name] = fit(name.split()[0], start=a, end=b, **kw)
        settings[f"wall time, {name} (s)"] = round(time.perf_counter() - t0, 1)
        if name != "update":
            settings[f"start, {name}"] = _start_record(fits[name])
        notes += [f"{name}: {w.category.__name__}: {w.message}" for w in caught]
    in_sample = {m: evaluate_in_sample(fits[m], market=m, seed=seed)
                 for m in ("sp500", "vw") if m in fits}
    oot = evaluate_out_of_time(fits["sp500 to the cut"], updated, cut=t_cut, market="sp500")
    return Evaluation(in_sample, oot, settings, tuple(dict.fromkeys(notes)))
