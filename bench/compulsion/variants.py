"""The screened variants: observables x model design (not a full factorial). Rounds 1-5 are in
:mod:`.variants_early`; this module adds rounds 6-16, and its ``VARIANTS`` is the whole list the
harness reads. The duration priors ``DUR4`` / ``DUR5`` / ``DUR6`` are described in
:mod:`.variants_early`, where they are defined.
"""

from __future__ import annotations

from .em import Design
from .variants_early import DUR4, DUR5, DUR6, K5N, MIXED, VARIANTS, Variant

__all__ = ["Variant", "VARIANTS", "DUR4", "DUR5"]

# Round 6 (2026-12-06, later session): stress migrates to what is liquid or collateral, and
# Treasuries are both. A forced deleveraging moves the bond market with the stock market; a
# discretionary equity repricing need not. The bond market's own turbulence against its trailing
# year: realised (5-day rms change of the 10-year yield, 1962-2018, so 1987 and 1998 are
# covered) and implied (MOVE, 2002-2018 only: the out-of-time fit sees it on 2002-2006 alone).
VARIANTS = VARIANTS + (
    Variant("k5_bond_noar_strong", MIXED + ("bond_vol_surprise",), Design(**K5N),
            "k5_price_noar_strong + bond_vol_surprise (10-year yield, 5-day rms vs its year)"),
    Variant("k5_move_noar_strong", MIXED + ("move_surprise",), Design(**K5N),
            "k5_price_noar_strong + move_surprise (log MOVE vs its trailing-year median)"),
    Variant("k5_bondmove_noar_strong", MIXED + ("bond_vol_surprise", "move_surprise"),
            Design(**K5N), "k5_price_noar_strong + bond_vol_surprise + move_surprise"),
)
VARIANTS = VARIANTS + (
    Variant("k5_bond21_noar_strong", MIXED + ("bond_vol21_surprise",), Design(**K5N),
            "k5_price_noar_strong + bond_vol21_surprise (21-day rms instead of 5-day)"),
    Variant("k5_bond2y_noar_strong", MIXED + ("bond2_vol_surprise",), Design(**K5N),
            "k5_price_noar_strong + the same for the 2-year yield"),
    Variant("k5_bond_sb_noar_strong", MIXED + ("bond_vol_surprise", "stock_bond"), Design(**K5N),
            "k5_bond_noar_strong + stock_bond"),
    Variant("k5_bond_hy_noar_strong", MIXED + ("bond_vol_surprise", "hy_abs5"), Design(**K5N),
            "k5_bond_noar_strong + |dHY| 5-day"),
    Variant("k5_bond_gated", MIXED + ("bond_vol_surprise",),
            Design(**{**K5N, "transitions": "gated"}),
            "k5_bond_noar_strong, forced flow entered from margin pressure only"),
)

# Round 7 (2026-12-06, late): forced flow "is later partly undone". The one-day reversal product
# (round 3) made forced flow more common; at the weekly horizon the reversal of a forced week
# shows within the stage's expected stay (8-9 days). On top of the default (k5_bond_gated).
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_rev5", MIXED + ("bond_vol_surprise", "reversal5"),
            Design(**{**K5N, "transitions": "gated"}),
            "k5_bond_gated + reversal5 (-(R5_t R5_{t-5}) / (5 sd63^2))"),
    Variant("k5_bond_gated_vrev5", MIXED + ("bond_vol_surprise", "vreversal5"),
            Design(**{**K5N, "transitions": "gated"}),
            "k5_bond_gated + vreversal5 (last week's move weighted by its abnormal volume)"),
)

# Round 8 (2026-12-07): two label-free findings on the default's own fit
# (bench/results/prior_predictive.md). (1) Forced flow is the broad stage: its emission sd is
# 1.13 on spread (0.20-0.39 elsewhere) and 1.65 on volume (0.81-1.00), so a day extreme on one
# observable is most likely under forced flow whatever the others say; heavy tails let every
# stage keep its own outliers. (2) The prior on P (1000 pseudo-transitions per row) puts forced
# flow on 0.3% of days while the fit puts it on 8.0% (smoothed) and its P on 3.3% (stationary):
# a prior-data conflict, so the screen measures how the scores move with the prior's strength.
_GATED = {**K5N, "transitions": "gated"}
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_t5", MIXED + ("bond_vol_surprise",), Design(**{**_GATED, "nu": 5.0}),
            "k5_bond_gated with Student-t emissions (nu = 5 fixed)"),
    Variant("k5_bond_gated_t10", MIXED + ("bond_vol_surprise",), Design(**{**_GATED, "nu": 10.0}),
            "k5_bond_gated with Student-t emissions (nu = 10 fixed)"),
    Variant("k5_bond_gated_s100", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "strength": 100.0}), "k5_bond_gated, duration prior strength 100"),
    Variant("k5_bond_gated_s300", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "strength": 300.0}), "k5_bond_gated, duration prior strength 300"),
    Variant("k5_bond_gated_s3000", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "strength": 3000.0}),
            "k5_bond_gated, duration prior strength 3000"),
    Variant("k5_bond_gated_tied", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "cov": "tied"}),
            "k5_bond_gated with one sd per observable shared by the stages"),
    Variant("k5_bond_gated_tied_sv", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "tied": ("spread", "volume")}),
            "k5_bond_gated with the sd of spread and volume shared by the stages (forced flow "
            "is broad on those two)"),
)

# Round 8d: ablations of the two observables on which forced flow is broad (spread, volume).
_NO_SPREAD = ("volatility", "vol_surprise", "volume", "impact", "bond_vol_surprise")
_NO_VOLUME = ("spread", "volatility", "vol_surprise", "impact", "bond_vol_surprise")
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_nospread", _NO_SPREAD, Design(**_GATED),
            "k5_bond_gated without the spread estimate"),
    Variant("k5_bond_gated_novolume", _NO_VOLUME, Design(**_GATED),
            "k5_bond_gated without abnormal volume"),
)

# Round 8e: the prior-data conflict on P (bench/results/prior_predictive.md). The framework
# durations (250 / 250 / 20 / 7 / 40 days) make forced flow 0.3% of days a priori; the S&P 500
# fit's durations are 40 / 22 / 15 / 9 / 30. A prior centred there (same strength) is empirical
# Bayes on the S&P 500 series (and on 2007-2018 for the out-of-time test): screened to measure
# what the conflict costs, not as a candidate default.
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_fitdur", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "durations": (40.0, 22.0, 15.0, 9.0, 30.0)}),
            "k5_bond_gated with the durations of its own S&P 500 fit as the prior's centre"),
)

# Round 9: partial pooling of the emission sds (the middle ground between a broad forced-flow
# stage and one tied sd per observable). Prior sd of log sigma around the stages' mean, set
# before the run from what it allows (2 prior sds between two stages' log sds: a ratio of
# e^(2 sqrt(2) pool): 2.0x at 0.25, 4.1x at 0.5, 17x at 1.0), not from a score.
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_pool{tag}", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "pool": pool}),
            f"k5_bond_gated with the log emission sds pooled across stages (prior sd {pool})")
    for tag, pool in (("025", 0.25), ("05", 0.5), ("1", 1.0))
)

# Round 9c: a second discretionary stage. Forced flow's 7.8% of days are mostly long stretches
# (2002, 2008-09, 2001, 2011; 68% of its days in runs of 21+ days), so a persistent
# high-volatility repricing still has nowhere to go but forced flow when it is more volatile
# than the one discretionary stage. K = 6: the sixth stage is a second discretionary stage
# (the higher-volatility one), prior duration 40 days like the first.
VARIANTS = VARIANTS + (
    Variant("k6_bond_gated", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "n_stages": 6, "durations": DUR6}),
            "k5_bond_gated with a second discretionary stage (K = 6)"),
    Variant("k7_bond_gated", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "n_stages": 7, "durations": DUR6 + (40.0,)}),
            "k5_bond_gated with two more discretionary stages (K = 7): does the log posterior "
            "keep rising with K?"),
)

# Round 9d: forced flow is margin pressure that breaks. On the LEVEL observables (spread,
# volatility) forced flow shares margin pressure's emission, so it can differ only by the
# break (vol_surprise), volume, impact and the bond market: a persistent high-volatility
# stretch without a break then has no level-based reason to be forced flow.
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_mplevel_{tag}", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "ff_like_mp": cols}),
            f"k5_bond_gated, forced flow with margin pressure's emission on {', '.join(cols)}")
    for tag, cols in (("sv", ("spread", "volatility")), ("s", ("spread",)),
                      ("v", ("volatility",)))
)

# Round 10 (2026-12-07, third session): a sixth stage identified by mechanism, not by volatility
# rank: a sudden discretionary break, entered from calm only (orderly, fragile), the stage with
# the second-largest vol_surprise mean after forced flow, prior duration 7 days like forced
# flow. The other stages as in the default.
K6B = ("k6break", "vol_surprise", "volatility")
VARIANTS = VARIANTS + (
    Variant("k6_break_gated", MIXED + ("bond_vol_surprise",),
            Design(**{**K5N, "n_stages": 6, "transitions": "gated_break", "order": K6B,
                  "durations": DUR5 + (7.0,)}),
            "k5_bond_gated + a break-from-calm stage (entered from orderly/fragile only)"),
    Variant("k6_break_gated_d20", MIXED + ("bond_vol_surprise",),
            Design(**{**K5N, "n_stages": 6, "transitions": "gated_break", "order": K6B,
                  "durations": DUR5 + (20.0,)}),
            "k6_break_gated with a 20-day prior duration of the break"),
)

# Round 10c: forced flow identified where both the equity and the collateral market break
# (stress migrates to what is liquid or collateral): the largest bond_vol_surprise mean, or the
# largest sum of the vol_surprise and bond_vol_surprise means; otherwise the default.
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_ffbond", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "order": ("k5", "bond_vol_surprise", "volatility")}),
            "k5_bond_gated, forced flow = the largest bond_vol_surprise mean"),
    Variant("k5_bond_gated_ffsum", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "order": ("k5sum", ("vol_surprise", "bond_vol_surprise"),
                                      "volatility")}),
            "k5_bond_gated, forced flow = the largest vol_surprise + bond_vol_surprise mean"),
)

# Round 11 (2026-12-07, fourth session): forced flow is "late and usually short", but one HMM
# state gives it a geometric stay, whose long tail holds most of its days (68% in runs of 21+
# days). As m phases in series (.dwell) the stay is negative binomial with the same prior mean
# (7 days): a lighter tail, and a one-day stay no longer the likeliest. m set from the shape it
# gives (the sd of the stay falls as 1 / sqrt(m)), not from a score.
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_nb{m}", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "ff_phases": m}),
            f"k5_bond_gated, forced flow as {m} phases in series (negative-binomial stay)")
    for m in (2, 3, 4)
)

# Round 11b: a persistent crisis regime. Round 9c's sixth stage (prior 40 days) became a 4-5-day
# break from calm, so the long turbulent stretches (2002, 2008-09) stayed in forced flow. Here
# the sixth stage (the higher-volatility discretionary stage) gets a prior stay of half a year
# (120 days; 60 as the sensitivity), the length of a bear market's crisis stretch, so it can
# only be a regime, and forced flow can be the breaks inside it.
VARIANTS = VARIANTS + tuple(
    Variant(f"k6_bond_gated_crisis{d}", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "n_stages": 6, "durations": DUR5 + (float(d),)}),
            f"k5_bond_gated + a persistent high-volatility regime (K = 6, prior stay {d} days)")
    for d in (120, 60)
)

# Round 12 (2026-12-07, fifth session): where the day closes in its range. Forced orders must be
# done by the close, so under compulsion the pressure lasts into the close (the day closes at
# its extreme in the direction of its move, in a crash or a squeeze alike); a discretionary
# selloff meets buyers within the day. close_pressure (daily), its 5-day mean, and the 5-day
# mean of |clv| (direction-free in the day's own sense), each added to the default.
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_{name}", MIXED + ("bond_vol_surprise", name), Design(**_GATED),
            f"k5_bond_gated + {name} (close location in the day's range)")
    for name in ("close_pressure", "close_pressure5", "clv_abs5")
)

# Round 12b: compulsion, not volatility, as the labelling rule itself: the most turbulent stage
# (highest volatility mean) is named discretionary, and forced flow is the largest break among
# the others, so forced flow can never be the sample's most turbulent stage (K = 5, and K = 6
# with the usual discretionary stage beside the turbulent one).
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_top", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "order": ("k5top", "vol_surprise", "volatility")}),
            "k5_bond_gated, the most volatile stage named discretionary, forced flow the largest "
            "break among the others"),
    Variant("k6_bond_gated_top", MIXED + ("bond_vol_surprise",),
            Design(**{**_GATED, "n_stages": 6, "durations": DUR6,
                      "order": ("k5top", "vol_surprise", "volatility")}),
            "k6_bond_gated, the most volatile stage named discretionary2, forced flow the largest "
            "break among the others"),
)

# Round 13 (2026-12-07, sixth session): the liquid wrapper against its basket. Holders under
# compulsion sell what is liquid, so the ETF's day departs from its index's beyond what
# arbitrage closes, and comes back; a discretionary repricing moves both together. Daily and
# 5-day forms of |SPY return - index return| against its trailing year, each added to the
# default (missing before 1993 and for other markets).
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_{name}", MIXED + ("bond_vol_surprise", name), Design(**_GATED),
            f"k5_bond_gated + {name} (SPY against the index, against its trailing year)")
    for name in ("etf_gap1", "etf_gap5")
)

# Round 14 (2026-12-07, seventh session): the posterior predictive check of the default's fit
# (bench/results/ppc_sp500_*.csv) finds the observables persistent inside a stage (lag-1
# autocorrelation of volume 0.51, of bond_vol_surprise 0.82, of the spread estimate 0.99, against
# 0.02-0.8 in the replicates), so each day of a long turbulent stretch counts as fresh evidence.
# An autoregressive emission per observable, y_td = mu_kd + phi_d y_{t-1,d} + e (phi_d shared by
# the stages, estimated), makes a stage explain what is NEW in a day: on every observable, on
# the three with the worst misfit, and on the spread estimate alone. Label-free: chosen from the
# check, not from an episode.
_MIXED_BOND = MIXED + ("bond_vol_surprise",)
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_lag_{name}", _MIXED_BOND, Design(**{**_GATED, "lag": cols}),
            f"k5_bond_gated with an AR(1) emission (shared phi) on {', '.join(cols)}")
    for name, cols in (("all", _MIXED_BOND), ("persist", ("spread", "volume",
                                                          "bond_vol_surprise")),
                       ("spread", ("spread",)))
)
# ... and the AR(1) emission on every observable with the duration prior ten times as strong
# (10,000 pseudo-transitions per row), since the plain one lets every stage flicker (2-5 days).
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_lag_all_s10000", _MIXED_BOND,
            Design(**{**_GATED, "lag": _MIXED_BOND, "strength": 10000.0}),
            "k5_bond_gated_lag_all with the duration prior at 10,000 pseudo-transitions per row"),
)
# ... and on the two observables whose persistence is built by an overlapping window (the 21-day
# spread estimate and the 5-day bond turbulence), the others left as they are.
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_lag_windows", _MIXED_BOND,
            Design(**{**_GATED, "lag": ("spread", "bond_vol_surprise")}),
            "k5_bond_gated with an AR(1) emission on spread and bond_vol_surprise"),
)

# Round 15 (2026-12-08): the other remedy round 14 named for the persistence the predictive check
# finds. Instead of an AR emission, observables with less window overlap: the spread estimate over
# 5 or 10 rows instead of 21, and the bond turbulence of the day instead of the 5-day rms, each
# replacing the default's own (label-free: chosen from the check, before any score).
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_{name}", cols, Design(**_GATED), text)
    for name, cols, text in (
        ("spread5", ("spread5",) + _MIXED_BOND[1:], "k5_bond_gated with the 5-row spread"),
        ("spread10", ("spread10",) + _MIXED_BOND[1:], "k5_bond_gated with the 10-row spread"),
        ("bond1", MIXED + ("bond_vol1_surprise",),
         "k5_bond_gated with the day's bond turbulence instead of the 5-day rms"),
        ("short", ("spread5",) + MIXED[1:] + ("bond_vol1_surprise",),
         "k5_bond_gated with the 5-row spread and the day's bond turbulence"),
    )
)

# Round 16 (2026-12-08): the remedy round 14 left untried for the same check: an AR(1) emission
# whose persistence is each stage's own, phi_kd (Hamilton 1989's MS-AR with switching
# persistence; exact M step, bench/compulsion/lags.py), so that a persistent repricing and a
# break can differ in how today follows yesterday, not only in level. On every observable and on
# the two window-built ones (label-free: from the check, before any score).
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_lag_{name}_stage", _MIXED_BOND,
            Design(**{**_GATED, "lag": cols, "lag_stage": True}),
            f"k5_bond_gated with a stage-specific AR(1) emission on {', '.join(cols)}")
    for name, cols in (("all", _MIXED_BOND), ("windows", ("spread", "bond_vol_surprise")))
)
# ... and on every observable with the duration prior ten times as strong, as round 14 tried for
# the shared coefficient (its stages last 2-6 days at the default strength).
VARIANTS = VARIANTS + (
    Variant("k5_bond_gated_lag_all_stage_s10000", _MIXED_BOND,
            Design(**{**_GATED, "lag": _MIXED_BOND, "lag_stage": True, "strength": 10000.0}),
            "k5_bond_gated_lag_all_stage with the duration prior at 10,000 pseudo-transitions"),
)

# Round 16c: the framework's "late and usually short" as a structure, not a prior: every stage but
# forced flow carries its observables' persistence (its own phi_kd), forced flow draws its days
# independently (phi = 0), so a long turbulent stretch is explained better by a persistent stage
# and forced flow keeps the breaks (chosen from the framework, before any score).
VARIANTS = VARIANTS + tuple(
    Variant(f"k5_bond_gated_lag_{name}_stage_ffiid", _MIXED_BOND,
            Design(**{**_GATED, "lag": cols, "lag_stage": True, "lag_zero": (3,)}),
            f"k5_bond_gated_lag_{name}_stage with forced flow's coefficient fixed at 0")
    for name, cols in (("all", _MIXED_BOND), ("windows", ("spread", "bond_vol_surprise")))
)
