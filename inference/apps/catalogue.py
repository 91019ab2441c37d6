"""The crisis catalogue: known stress episodes with their published labels, for evaluation.

``stressflow/data/datasets/crisis_catalogue.csv`` (provenance in ``CATALOGUE.md`` beside it)
lists episodes up to 2018 with the label a public source gives them:

- ``F-``: forced selling / liquidation;  ``F+``: forced buying / short covering;
- ``D``: discretionary or information-driven (a control);  ``M``: mixed, mechanical or contested;
- ``calm``: a calm period (a control over months: orderly or fragile nearly every day).

:func:`score_catalogue` scores every catalogued episode of the fit's market that lies inside
the fitted range as a user window (:func:`stressflow.inference.apps.episodes.window_episodes`), with
``p_compulsion = Pr(#{t in D : stage_t = forced_flow} >= min_share * |D| | y_1..y_T)``, and
adds ``mean_forced = mean_{t in D} Pr(stage_t = forced_flow | y_1..y_T)`` (the smoothed
probability averaged over the same days ``D``), and states whether the score agrees with the
label:

- ``F-``/``F+``: ``"yes"`` if ``p_compulsion >= hi`` (a forced label), else ``"no"``;
- ``D``: ``"yes"`` if ``p_compulsion <= lo`` (a discretionary label), else ``"no"``;
- ``M``: ``"n/a"`` (a mixed or contested label is not a test of the score);
- ``calm``: scored by ``mean_forced`` instead: ``"yes"`` if ``mean_forced < calm_max``
  (:data:`CALM_MAX` = 0.02), else ``"no"``.

The labels are never used to fit or tune anything: they are read only here, after the fit.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.models import dims

__all__ = [
    "CALM_MAX",
    "EXPECTED_LABELS",
    "FORCED_LABELS",
    "load_catalogue",
    "fit_market",
    "score_catalogue",
    "agreement",
]

#: The catalogue's label vocabulary.
EXPECTED_LABELS = {
    "F-": "forced selling / liquidation",
    "F+": "forced buying / short covering",
    "D": "discretionary or information-driven (control)",
    "M": "mixed, mechanical or contested",
    "calm": "calm period (orderly or fragile nearly every day; a control)",
}
#: The labels of forced episodes (the positives of an evaluation).
FORCED_LABELS = ("F-", "F+")
#: A ``calm`` period agrees when its mean ``Pr(stage_t = forced_flow | ...)`` is below this.
CALM_MAX = 0.02
_FILE = "crisis_catalogue.csv"
_COLUMNS = ("episode", "start", "end", "market", "expected", "source")


def load_catalogue(path: str | Path | None = None) -> pd.DataFrame:
    """The bundled crisis catalogue (or the catalogue CSV at ``path``), validated.

    Returns
    -------
    pandas.DataFrame
        Columns ``episode`` (str), ``start``, ``end`` (Timestamps, inclusive calendar dates),
        ``market`` (a bundled dataset name), ``expected`` (one of :data:`EXPECTED_LABELS`),
        ``source``, ``note``.

    Raises
    ------
    ValueError
        Naming the row and column of any invalid entry.
    """
    from stressflow.data.bundled import DATASETS

    name = _FILE if path is None else Path(path).name
    if path is None:
        with resources.files("stressflow.data").joinpath("datasets", _FILE).open("rb") as handle:
            cat = pd.read_csv(handle, dtype=str, keep_default_na=False)
    else:
        cat = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in _COLUMNS if c not in cat.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")
    for i, row in cat.iterrows():
        where = f"{name} row {i + 1} ({row['episode']!r})"
        for col in _COLUMNS:
            if not row[col].strip():
                raise ValueError(f"{where}: empty {col}")
        if row["market"] not in DATASETS:
            raise ValueError(f"{where}: market {row['market']!r} is not a bundled dataset")
        if row["expected"] not in EXPECTED_LABELS:
            raise ValueError(f"{where}: expected label {row['expected']!r} is not one of "
                             f"{list(EXPECTED_LABELS)}")
    for col in ("start", "end"):
        cat[col] = pd.to_datetime(cat[col], format="%Y-%m-%d", errors="coerce")
        bad = cat[col].isna()
        if bad.any():
            raise ValueError(f"{name} row {int(np.argmax(bad.to_numpy())) + 1}: {col} is not "
                             "a YYYY-MM-DD date")
    late = cat["end"] < cat["start"]
    if late.any():
        raise ValueError(f"{name} row {int(np.argmax(late.to_numpy())) + 1}: end before start")
    if cat["episode"].duplicated().any():
        raise ValueError(f"{name}: duplicate episode names")
    return cat


def fit_market(fit: xr.DataTree, market: str | None = None) -> str:
    """The bundled dataset name a fit's data came from.

    ``market`` if given; else ``fit.attrs["source"]`` when it is a bundled dataset name (as
    ``stressflow fit --dataset NAME`` stores it) or the path of a bundled dataset's file.

    Raises
    ------
    ValueError
        If ``market`` is not a bundled dataset, or the fit's source does not name one.
    """
    from stressflow.data.bundled import DATASETS

    if market is not None:
        if market not in DATASETS:
            raise ValueError(f"market {market!r} is not a bundled dataset ({', '.join(DATASETS)})")
        return market
    source = str(fit.attrs.get("source", ""))
    if source in DATASETS:
        return source
    by_file = {d.file: name for name, d in DATASETS.items()}
    if source and Path(source).name in by_file:
        return by_file[Path(source).name]
    raise ValueError(
        f"the fit's source ({source!r}) does not name a bundled dataset: pass market=... "
        f"(one of {', '.join(DATASETS)}) to say which catalogue entries apply"
    )


def agreement(expected: str, p_compulsion: float, *, hi: float = 0.7, lo: float = 0.3,
              mean_forced: float | None = None, calm_max: float = CALM_MAX) -> str:
    """``"yes"``/``"no"``/``"n/a"``: does a score agree with a catalogue label?

    ``F-``/``F+`` agree iff ``p_compulsion >= hi``; ``D`` agrees iff ``p_compulsion <= lo``;
    ``M`` is ``"n/a"``; ``calm`` agrees iff ``mean_forced < calm_max``, where ``mean_forced``
    is the period's mean probability of ``forced_flow`` (``p_compulsion`` is ignored for it).
    A NaN score is ``"n/a"``.

    Raises
    ------
    ValueError
        Unknown label, or ``calm`` without ``mean_forced``.
    """
    if expected not in EXPECTED_LABELS:
        raise ValueError(f"expected must be one of {list(EXPECTED_LABELS)}, got {expected!r}")
    if expected == "calm":
        if mean_forced is None:
            raise ValueError("a calm period is scored by its mean Pr(forced_flow): pass "
                             "mean_forced=...")
        if not np.isfinite(mean_forced):
            return "n/a"
        return "yes" if mean_forced < calm_max else "no"
    if expected == "M" or not np.isfinite(p_compulsion):
        return "n/a"
    if expected in FORCED_LABELS:
        return "yes" if p_compulsion >= hi else "no"
    return "yes" if p_compulsion <= lo else "no"


def score_catalogue(
    fit: xr.DataTree,
    *,
    market: str | None = None,
    catalogue: pd.DataFrame | None = None,
    min_share: float = 0.5,
    lead_in: int = 5,
    hi: float = 0.7,
    lo: float = 0.3,
    n_draws: int | None = 200,
    paths_per_draw: int = 10,
    seed: int = 0,
    paths: xr.DataArray | None = None,
) -> pd.DataFrame:
    """Score the catalogued episodes of the fit's market that lie inside the fitted range.

    An episode is in range when ``start >= `` the fit's first day and ``end <= `` its last.
    Each is scored as a window (see :func:`stressflow.inference.apps.episodes.episodes`):
    ``p_compulsion = Pr(#{t in D : stage_t = forced_flow} >= min_share * |D| | y_1..y_T)``.

    Parameters
    ----------
    fit : xarray.DataTree
        A stressflow fit.
    market : str, optional
        Bundled dataset name of the fit's data; required when ``fit.attrs["source"]`` does not
        name one (fits from a DataFrame, a ``PreparedData`` or the Python API).
    catalogue : pandas.DataFrame, optional
        Default :func:`load_catalogue`. Not modified.
    paths : xarray.DataArray, optional
        Precomputed path samples of the fit (else drawn with ``n_draws``, ``paths_per_draw``,
        ``seed``).

    Returns
    -------
    pandas.DataFrame
        One row per scored episode: ``episode, market, expected`` and the columns of
        :func:`~stressflow.inference.apps.episodes.episodes`, plus ``mean_forced``
        (``mean_{t in D} Pr(stage_t = forced_flow | y_1..y_T)``, NaN when ``D`` is empty) and
        ``agree`` (:func:`agreement`; a ``calm`` row by ``mean_forced``). Empty (with these
        columns) when no episode is in range.
    """
    from stressflow.inference.apps.episodes import EPISODE, episodes

    market = fit_market(fit, market)
    cat = load_catalogue() if catalogue is None else catalogue.copy()
    times = pd.DatetimeIndex(fit["observed_data"][dims.TIME].values)
    inside = (cat["market"] == market) & (cat["start"] >= times[0]) & (cat["end"] <= times[-1])
    rows = cat.loc[inside, ["episode", "market", "expected", "start", "end"]]
    rows = rows.reset_index(drop=True)
    if rows.empty:
        cols = ["episode", "market", "expected", "start", "end", "p_compulsion", "label",
                "mean_forced", "agree"]
        return pd.DataFrame(columns=cols).rename_axis(EPISODE)
    table = episodes(fit, windows=rows, min_share=min_share, lead_in=lead_in, hi=hi, lo=lo,
                     n_draws=n_draws, paths_per_draw=paths_per_draw, seed=seed, paths=paths)
    if "p_compulsion" not in table:  # no window had a day with an observation
        table["p_compulsion"] = np.nan
    table["mean_forced"] = [_mean_forced(fit, s, e) for s, e in zip(rows["start"], rows["end"],
                                                                      strict=True)]
    table["agree"] = [agreement(e, p, hi=hi, lo=lo, mean_forced=m) for e, p, m in
                      zip(table["expected"], table["p_compulsion"], table["mean_forced"],
                          strict=True)]
    return table


def _mean_forced(fit: xr.DataTree, start, end) -> float:
    """``mean_{t in D} Pr(stage_t = forced_flow | y_1..y_T)`` over the fit's days in
    ``[start, end]`` with at least one observable (NaN if none)."""
    smoothed = fit["stages"]["smoothed"].sel({dims.STAGE: "forced_flow"}).to_series()
    feats = fit["observed_data"]["features"].transpose(dims.TIME, dims.FEATURE).values
    observed = pd.Series(np.isfinite(feats).any(axis=1), index=smoothed.index)
    inside = (smoothed.index >= pd.Timestamp(start)) & (smoothed.index <= pd.Timestamp(end))
    vals = smoothed[inside & observed.to_numpy()]
    return float(vals.mean()) if len(vals) else float("nan")
