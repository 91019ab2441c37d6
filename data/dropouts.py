r"""Volume dropouts: trading days whose recorded volume is far below its own trailing level.

A day trades a fraction of a normal session's volume when the session is short (the NYSE
closes early on July 3, the day after Thanksgiving, December 24 and some December 26 and 31;
a blizzard or a blackout empties the floor) or when the volume field is wrong (a vendor row
that records one exchange's volume instead of the composite). Neither is compulsion, and
neither says anything about price impact: Amihud's ratio of such a day divides a normal move by
a fraction of the volume. Left in the data these days are outliers that the model has to put
somewhere, and the widest stage (forced flow) takes them.

Rule. With :math:`V_t` the ``volume`` observable (log volume minus the median log volume of
the previous 63 trading rows, :mod:`stressflow.data.observables`) on trading rows with a
volume value, :math:`m_t` the median of the previous 252 values of :math:`V` and
:math:`s_t = 1.4826\,\operatorname{median}\{|V_{t-k} - m_{t-k}|: 1 \le k \le 252\}` their
robust (MAD) scale, day :math:`t` is a **volume dropout** when

.. math:: V_t < m_t - K s_t, \qquad K = \texttt{DROPOUT\_SD} = 5,

one-sided: abnormally HIGH volume is the signal of forced flow and is never touched. Both
windows need at least 60 values, so the first 120 or so trading rows are never flagged. The
rule is causal (rows up to :math:`t` only), so a fit and its ``update`` flag the same days.

How K = 5 was chosen, from the data and the exchange calendar, never from an episode label:
on the bundled S&P 500 (1983-2018, robust scale 0.15) the 64 days below 5 robust sd are 50
early-close or holiday-bridge sessions (Jul 3: 7, the Friday after Thanksgiving: 21, Dec 24:
15, Dec 26: 6, Dec 31 1999), 8 vendor rows with a wrong volume (2011-02-18 .. 2011-03-02 and
2008-08-05: composite volume about a third of the days around them) and 6 other quiet days
(the blizzard of 1996-01-08, the blackout of 2003-08-15, 1986-10-13, 1996-07-05, 2000-11-29,
2010-12-22). Between 4 and 5 robust sd lie 29 more days, nearly all of them holiday-season
or early-close sessions as well (e.g. 1987-11-27, 2008-11-28, 2016-11-25): K = 5 is
conservative, it misses some short sessions rather than take ordinary quiet days. The same rule
flags 2 days on SPY (early closes 2003-12-24, 2005-11-25), 5 on VW (Xetra, 2006-03-28 the
largest) and none on GME, whose volume is three times as noisy.

Treatment (``prepare(..., volume_dropouts=)``): ``"keep"`` (default) uses the day's volume
and impact as computed; ``"mask"`` makes that day's ``volume`` and ``impact`` observables
missing (its prices, spread and volatility are kept, so the day still enters the fit through
them). Flagged days are counted in ``DataReport.n_volume_dropouts`` and warned about in both
modes.

Why the default keeps them (measured on the bundled S&P 500 1985-2018, default model; the
README's compulsion section has the tables): masking is right about the data, but it moves the
model's best optimum. With the dropouts kept, the highest-posterior EM solution over 18 starts
puts 7.7% of days in forced flow and the NUTS fit separates every forced episode from every
discretionary control (AUC 1.0); with them masked, the highest-posterior solution is another
configuration (forced flow on 13.7% of days, the 2016 scare and Q4 2018 at p_compulsion 1.00,
AUC 0.86), and NUTS follows it. 64 of 8,570 days deciding which configuration wins says the
stages' meanings are weakly identified; until the model is robust to it, masking is an option
for research, not the default.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from stressflow.models.dims import FEATURES

__all__ = [
    "DROPOUT_SD",
    "VOLUME_DROPOUT_MODES",
    "find_volume_dropouts",
    "treat_volume_dropouts",
]

#: Robust sd below the trailing median at which a day's abnormal volume is a dropout.
DROPOUT_SD: float = 5.0
#: Treatments accepted by ``prepare(..., volume_dropouts=)`` (the first is the default).
VOLUME_DROPOUT_MODES: tuple[str, ...] = ("keep", "mask")
_WINDOW = 252
_MIN_PERIODS = 60
_MAD_TO_SD = 1.4826
_VOLUME, _IMPACT = FEATURES[2], FEATURES[3]


def find_volume_dropouts(volume: pd.Series) -> pd.Series:
    """Boolean Series like ``volume`` (the raw ``volume`` observable): True on dropout days.

    NaN values (non-trading rows, warm-up) are never flagged and do not enter the windows.
    """
    v = volume.dropna()
    centre = v.shift(1).rolling(_WINDOW, min_periods=_MIN_PERIODS).median()
    deviation = (v - centre).abs()
    scale = _MAD_TO_SD * deviation.shift(1).rolling(_WINDOW, min_periods=_MIN_PERIODS).median()
    hit = (v < centre - DROPOUT_SD * scale) & (scale > 0)
    out = pd.Series(False, index=volume.index)
    out.loc[hit.index[hit.to_numpy(dtype=bool)]] = True
    return out


def treat_volume_dropouts(raw: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, pd.Series]:
    """Flag volume dropouts in ``raw`` (observables by date) and apply ``mode``.

    Returns ``(observables, flags)``: with ``"mask"`` a new frame whose ``volume`` and
    ``impact`` are NaN on the flagged days, with ``"keep"`` ``raw`` itself. ``raw`` is never
    modified.
    """
    if mode not in VOLUME_DROPOUT_MODES:
        raise ValueError(f"volume_dropouts must be one of {VOLUME_DROPOUT_MODES}, got {mode!r}")
    flags = find_volume_dropouts(raw[_VOLUME])
    if mode == "mask" and flags.any():
        raw = raw.copy()
        raw.loc[flags.to_numpy(), [_VOLUME, _IMPACT]] = np.nan
    return raw, flags
