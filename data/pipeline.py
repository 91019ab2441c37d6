"""From raw prices to standardised observables: :func:`prepare`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from stressflow.models.dims import FEATURE, TIME

from .checks import check_magnitudes, check_usable, find_splits, treat_bad_ticks
from .covariate_join import bond_yield_source, warn_bond_coverage, window_covariates
from .dropouts import treat_volume_dropouts
from .errors import DataError
from .observables import compute_observables
from .options import check_columns, extra_features, resolve_options
from .prices import REQUIRED_COLUMNS, Source, read_prices
from .report import GAP_BUSINESS_DAYS, DataReport, emit_warnings, find_gaps, window_dates
from .transform import COVARIATE, FeatureTransform
from .window import DateLike, select_window, to_timestamp

__all__ = ["GAP_BUSINESS_DAYS", "PreparedData", "prepare"]


@dataclass(frozen=True)
class PreparedData:
    """Observables ready for a model, with everything needed to reproduce them.

    Attributes
    ----------
    features : pandas.DataFrame
        Standardised observables, index = all dates in ``start..end`` (named
        :data:`~stressflow.models.dims.TIME`), columns = :data:`~stressflow.models.dims.FEATURES`
        followed by any extra columns (named :data:`~stressflow.models.dims.FEATURE`); NaN
        where an observation is missing.
    raw : pandas.DataFrame
        Same shape: the untransformed (log-scale) observables, ``features = (raw - center) /
        scale``.
    prices : pandas.DataFrame
        The validated input rows in ``start..end`` (index named ``"date"``).
    transform : FeatureTransform
        The standardisation and observable options; pass it to :func:`prepare` to put new
        data on the same scale.
    report : DataReport
        Counts of every treatment applied.
    covariates : pandas.DataFrame
        Standardised transition covariates, shape ``(T, C)``: index = ``features.index``,
        columns = the covariate names (axis named ``"covariate"``), no NaN; ``(T, 0)`` when
        there are none. Row ``t`` is ``z_t``; a model uses ``z_{t-1}`` for the move into
        day ``t`` (formulas in :mod:`stressflow.data.covariates`).
    raw_covariates : pandas.DataFrame
        Same shape, unstandardised: ``covariates = (raw_covariates - transform.covariate_center)
        / transform.covariate_scale``.
    """

    features: pd.DataFrame
    raw: pd.DataFrame
    prices: pd.DataFrame
    transform: FeatureTransform
    report: DataReport
    covariates: pd.DataFrame | None = None
    raw_covariates: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        for name in ("covariates", "raw_covariates"):
            if getattr(self, name) is None:
                empty = pd.DataFrame(
                    index=self.features.index.copy(),
                    columns=pd.Index([], name=COVARIATE, dtype=object),
                    dtype="float64",
                )
                object.__setattr__(self, name, empty)

    def __repr__(self) -> str:
        rows, cols = self.features.shape
        covariates = list(self.covariates.columns)
        return (
            f"PreparedData({rows} rows x {cols} features {list(self.features.columns)}, "
            + (f"covariates {covariates}, " if covariates else "")
            + f"{self.report.start:%Y-%m-%d}..{self.report.end:%Y-%m-%d})"
        )


def prepare(
    source: Source,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    spread_column: str | None = None,
    extra_columns: Iterable[str] = (),
    observables: Iterable[str] = (),
    columns: Mapping[str, str] | None = None,
    date_column: str = "date",
    volume_window: int | None = None,
    impact_window: int | None = None,
    spread_window: int | None = None,
    min_rows: int = 60,
    transform: FeatureTransform | None = None,
    transition_covariates: Iterable[str] = (),
    covariate_data: pd.DataFrame | pd.Series | None = None,
    covariate_max_stale: int | None = None,
    bad_ticks: str = "mask",
    volume_dropouts: str | None = None,
) -> PreparedData:
    """Validate daily prices and compute standardised stress observables.

    The observables (``spread``, ``volatility``, ``volume``, ``impact``; formulas and
    references in :mod:`stressflow.data.observables`) are computed on the full validated
    series and then restricted to ``start..end``, so trailing windows use history before
    ``start``. Nothing looks ahead: values at date ``t`` depend only on rows dated ``<= t``
    (given a fixed ``transform``). No date is ever dropped: missing observations are NaN.

    Parameters
    ----------
    source : str, path-like or pandas.DataFrame
        See :func:`~stressflow.data.read_prices`: a ``.csv``/``.parquet`` path, a bundled
        dataset name, or a DataFrame (never modified).
    start, end : date-like, optional
        Inclusive window; default: the whole data.
    spread_column : str, optional
        Column (after ``columns=`` renaming) holding a spread (> 0, e.g. a credit spread or
        quoted bid-ask spread); its log is the spread observable. Default: the Abdi-Ranaldo
        (2017) estimate from close, high and low.
    observables : iterable of str
        Optional observables computed from the tape besides the four built-in ones
        (:data:`stressflow.data.observables.OPTIONAL_OBSERVABLES`, e.g. ``"reversal"``); they
        follow the four, before any extra column. With a ``transform`` they come from it.
    extra_columns : iterable of str
        Further numeric columns added as features after the four built-in ones, each
        log-transformed if strictly positive over the window (reported in
        ``report.log_transformed``), else used as-is.
    columns : mapping, optional
        Renames input columns, e.g. ``{"Close": "close", "Vol": "volume"}``.
    date_column : str, default ``"date"``
        The date column (after renaming); a DatetimeIndex is used if it is absent.
    volume_window, impact_window, spread_window : int, optional
        Trailing windows in trading rows; default 63, 252 and 21 (about a quarter, a year
        and a month), or the given transform's values.
    min_rows : int, default 60
        Minimum number of rows in ``start..end``.
    transform : FeatureTransform, optional
        A transform fitted earlier (``PreparedData.transform``). If given, the new data are
        computed with its options and standardised with its centre and scale instead of
        fitting new ones. Options passed explicitly must agree with it; its covariates
        (names, centres, scales, carry limit) are used as well.
    transition_covariates : iterable of str
        Covariates for time-varying transition probabilities: registered names (``ted``,
        ``hy_oas``, ``baa10y``, ``vix``, their ``d_*`` changes, ``low_vol``; see
        :mod:`stressflow.data.covariates`) and/or user column names. Default: none, or the
        given transform's.
    covariate_data : pandas.DataFrame or named Series, optional
        Date-indexed source columns for the covariates (user columns, or e.g. ``hy_oas_pct``,
        which is not bundled), and ``bond_yield_10y_pct`` for ``bond_vol_surprise``; joined by
        date to the price rows. Never modified.
    covariate_max_stale : int, optional
        Most trading rows a covariate value is carried forward past its last observation;
        default 5 or the given transform's.
    bad_ticks : {"mask", "keep", "raise"}, default "mask"
        Treatment of suspected bad ticks (a price that jumps by more than 20 robust sd and
        jumps back the next day; rule in :mod:`stressflow.data.checks`): ``"mask"`` makes
        that day's prices missing, ``"keep"`` uses them, ``"raise"`` raises DataError. Flagged
        days are counted (``report.n_bad_ticks``) and warned about in every mode.
    volume_dropouts : {"keep", "mask"}, optional
        Treatment of volume dropouts (abnormal volume more than 5 robust sd below its trailing
        median: an early close or a bad volume record; rule, and why the default keeps them,
        in :mod:`stressflow.data.dropouts`): ``"keep"`` (default, or the given transform's
        choice, which it stores so an update treats new rows as the fit did) uses that day's
        volume and impact, ``"mask"`` makes them missing. Flagged days are counted
        (``report.n_volume_dropouts``) and warned about in both modes.

    Returns
    -------
    PreparedData

    Raises
    ------
    DataError
        For every unusable input (see :func:`~stressflow.data.read_prices`), plus: spread or
        extra column absent, non-numeric or (spread) <= 0; an extra column clashing with a
        feature name; a price outside ``[1e-6, 1e9]`` or a volume above ``1e15`` (absurd
        magnitudes, see :mod:`stressflow.data.checks`); a suspected bad tick with
        ``bad_ticks="raise"``; zero volume on every row, or ``high == low`` on every trading
        row (a constant price), in the window; start after end or a window outside the data
        (the message gives the data's range); fewer than ``min_rows`` rows in the window; a
        constant observable (zero standard deviation) over the window; a covariate unknown,
        with bad source data (non-numeric or infinite: the message names column and date), constant,
        or without a value on some day of the window (the message names the first such date
        and the dates its series covers).

    Warns
    -----
    DataWarning
        Once per treatment that affected the window, with the count and first dates: empty
        cells, suspected bad ticks, zero-volume rows, flat (``high == low``) rows, close
        outside ``[low, high]``, zero spread estimates, warm-up rows and gaps, and per
        covariate the days whose value was carried forward. The counts are in ``report``.
    """
    options = resolve_options(
        transform, volume_window=volume_window, impact_window=impact_window,
        spread_window=spread_window, spread_column=spread_column, extra_columns=extra_columns,
        observables=observables, transition_covariates=transition_covariates,
        covariate_max_stale=covariate_max_stale, min_rows=min_rows, bad_ticks=bad_ticks,
        volume_dropouts=volume_dropouts)
    prices = read_prices(source, columns=columns, date_column=date_column)
    check_magnitudes(prices)
    check_columns(prices, options)

    first, last = to_timestamp(start, "start"), to_timestamp(end, "end")
    window = select_window(prices.index, first, last)
    n_rows = int(window.sum())
    if n_rows < min_rows:
        shown_first = "first date" if first is None else f"{first:%Y-%m-%d}"
        shown_last = "last date" if last is None else f"{last:%Y-%m-%d}"
        raise DataError(
            f"only {n_rows} row(s) in the window {shown_first} .. {shown_last} "
            f"(min_rows={min_rows}); the data cover "
            f"{prices.index[0]:%Y-%m-%d} .. {prices.index[-1]:%Y-%m-%d}"
        )

    treated, ticks = treat_bad_ticks(prices, bad_ticks)
    splits = find_splits(prices).loc[window].dropna()
    if transform is None:
        # fitting a standardisation needs variation; with a fitted transform (e.g. one new day
        # added by update) a window of equal closes is ordinary data
        check_usable(treated, window)
    bond, bond_source = bond_yield_source(treated, covariate_data, options.observables,
                                          transform.bond_source if transform else None)
    obs = compute_observables(
        treated,
        spread_column=options.spread_column,
        spread_window=options.spread_window,
        volume_window=options.volume_window,
        impact_window=options.impact_window,
        optional=options.observables,
        bond_yield=bond,
    )
    in_window = prices.loc[window]
    observed, dropouts = treat_volume_dropouts(obs.raw, options.volume_dropouts)
    raw = observed.loc[window].copy()
    log_columns = extra_features(raw, in_window, options, transform)
    zero_volume = obs.zero_volume.to_numpy()[window]
    raw.loc[zero_volume, :] = np.nan
    warn_bond_coverage(raw, bond)
    raw.index = raw.index.rename(TIME)
    raw.columns = pd.Index([str(c) for c in raw.columns], name=FEATURE)

    if transform is None:
        transform = FeatureTransform.fit(
            raw,
            volume_window=options.volume_window,
            impact_window=options.impact_window,
            spread_window=options.spread_window,
            spread_column=options.spread_column,
            log_columns=log_columns,
            volume_dropouts=options.volume_dropouts,
            bond_source=bond_source,
        )
        fitted = True
    else:
        if tuple(raw.columns) != transform.features:
            raise DataError(
                f"features {list(raw.columns)} do not match the transform's "
                f"{list(transform.features)}"
            )
        fitted = False
    features = transform.apply(raw)
    cov = window_covariates(options.covariates, prices, covariate_data, window, transform,
                            fitted, options.max_stale)
    transform = cov.transform

    used = [*REQUIRED_COLUMNS, *options.wanted]
    empty = {c: int(in_window[c].isna().sum()) for c in used}
    gaps = find_gaps(in_window.index)
    report = DataReport(
        start=in_window.index[0],
        end=in_window.index[-1],
        n_rows=n_rows,
        spread_source=options.spread_column or "abdi_ranaldo",
        n_missing={c: int(features[c].isna().sum()) for c in features.columns},
        n_empty_cells={c: n for c, n in empty.items() if n},
        n_bad_ticks=int((ticks.to_numpy() & window).sum()),
        bad_tick_dates=window_dates(ticks, window),
        bad_ticks=bad_ticks,
        n_suspected_splits=len(splits),
        suspected_split_dates=tuple(splits.index),
        suspected_split_ratios=tuple(float(v) for v in splits),
        n_volume_dropouts=int((dropouts.to_numpy() & window).sum()),
        volume_dropout_dates=window_dates(dropouts, window),
        volume_dropouts=options.volume_dropouts,
        n_zero_volume=int(zero_volume.sum()),
        zero_volume_dates=window_dates(obs.zero_volume, window),
        n_flat_range=int((obs.flat_range.to_numpy() & window).sum()),
        flat_range_dates=window_dates(obs.flat_range, window),
        n_range_inconsistent=int((obs.range_inconsistent.to_numpy() & window).sum()),
        range_inconsistent_dates=window_dates(obs.range_inconsistent, window),
        n_zero_spread=int((obs.zero_spread.to_numpy() & window).sum()),
        zero_spread_dates=window_dates(obs.zero_spread, window),
        n_zero_return_floored=int((obs.return_floored.to_numpy() & window).sum()),
        n_warmup=int((obs.warmup.to_numpy() & window).sum()),
        n_gaps=len(gaps),
        gaps=tuple(gaps),
        log_transformed=tuple(log_columns),
        transform_fitted=fitted,
        **cov.report,
    )
    emit_warnings(report)
    return PreparedData(
        features=features,
        raw=raw,
        prices=in_window.copy(),
        transform=transform,
        report=report,
        covariates=cov.standardised,
        raw_covariates=cov.raw,
    )
