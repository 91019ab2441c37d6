"""The cross-asset observable ``bond_vol_surprise`` and the ``gated`` transition structure.

Oracles: a per-row loop over the bundled Treasury file (not the library's rolling code), the
causality of the value at t, and the user-supplied yield column (a 2-year yield, a series
that stops early, a bad cell).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from stressflow.data import DataError, DataWarning, FeatureTransform, load_dataset, prepare
from stressflow.data.observables import BOND_YIELD_COLUMN, bond_vol_surprise_observable
from stressflow.inference.fitting.initialize import em_start
from stressflow.models import dims
from stressflow.models.pymc_model import build_model
from stressflow.models.spec import ModelSpec, allowed_transitions

OBS = ("vol_surprise", "bond_vol_surprise")


def _oracle(dates: pd.DatetimeIndex, market: pd.DatetimeIndex, yields: pd.Series) -> np.ndarray:
    """bond_vol_surprise on ``dates`` by explicit loops over the market's trading rows."""
    change = yields.dropna().diff()

    def b(i: int) -> float:
        vals = [change.get(market[j], np.nan) for j in range(max(0, i - 4), i + 1)]
        vals = [v for v in vals if np.isfinite(v)]
        return 0.5 * np.log(max(np.mean(np.square(vals)), 1e-8)) if len(vals) >= 3 else np.nan

    out = []
    for date in dates:
        i = market.get_loc(date)
        history = [b(j) for j in range(max(0, i - 252), i)]
        history = [h for h in history if np.isfinite(h)]
        out.append(b(i) - np.median(history) if len(history) >= 84 else np.nan)
    return np.array(out)


@pytest.fixture(scope="module")
def sp500():
    return prepare("sp500", start="1985-01-01", end="2018-12-31", observables=OBS)


def test_bond_vol_surprise_matches_a_loop_over_the_treasury_file(sp500):
    raw = sp500.raw
    assert sp500.report.n_missing["bond_vol_surprise"] == 0
    market = raw.index[raw["volatility"].notna() | raw["volume"].notna()]
    dates = pd.DatetimeIndex(["1987-10-20", "1998-10-08", "2008-10-10", "2016-02-11",
                              "2018-12-24"])
    expected = _oracle(dates, market, load_dataset("treasury")["dgs10"])
    assert np.all(np.isfinite(expected))
    assert_allclose(raw.loc[dates, "bond_vol_surprise"], expected, atol=1e-12)
    # the crashes moved the bond market far more than its year; a calm day does not
    assert raw.loc["1987-10-20", "bond_vol_surprise"] > 1.0
    assert abs(raw.loc["2017-06-15", "bond_vol_surprise"]) < 1.0


def test_bond_vol_surprise_is_causal(sp500):
    cut = prepare("sp500", start="1985-01-01", end="2008-09-12", observables=OBS).raw
    assert_allclose(cut["bond_vol_surprise"], sp500.raw["bond_vol_surprise"].loc[:"2008-09-12"],
                    atol=1e-12)


def test_a_user_bond_yield_replaces_the_bundled_treasury():
    two_year = load_dataset("treasury")["dgs2"].dropna().rename(BOND_YIELD_COLUMN)
    got = prepare("sp500", start="2000-01-01", end="2010-12-31", observables=OBS,
                  covariate_data=two_year).raw["bond_vol_surprise"]
    market = got.index
    prices = load_dataset("sp500").loc[: "2010-12-31"]
    traded = prices.index[prices["volume"] > 0]
    expected = bond_vol_surprise_observable(two_year.diff().reindex(traded)).reindex(market)
    assert_allclose(got, expected, atol=1e-12)
    ten_year = prepare("sp500", start="2000-01-01", end="2010-12-31",
                       observables=OBS).raw["bond_vol_surprise"]
    assert np.abs(got - ten_year).max() > 0.1


def test_a_yield_series_that_stops_leaves_the_observable_missing_and_counted():
    short = load_dataset("treasury")["dgs10"].loc[:"2008-06-30"].rename(BOND_YIELD_COLUMN)
    with pytest.warns(DataWarning, match=r"bond_vol_surprise is missing on \d+ row\(s\).*"
                      r"1962-01-02 \.\. 2008-06-30"):
        prep = prepare("sp500", start="2005-01-01", end="2008-12-31", observables=OBS,
                       covariate_data=short)
    values = prep.raw["bond_vol_surprise"]
    assert values.loc[:"2008-06-30"].notna().all()
    assert values.loc["2008-07-08":].isna().all()
    assert prep.report.n_missing["bond_vol_surprise"] == int(values.isna().sum()) > 100


def test_a_bad_cell_in_the_user_bond_yield_names_the_column_and_date():
    frame = load_dataset("treasury")[["dgs10"]].rename(columns={"dgs10": BOND_YIELD_COLUMN})
    frame = frame.astype(object)
    frame.loc[pd.Timestamp("2007-08-09"), BOND_YIELD_COLUMN] = "n/a"
    with pytest.raises(DataError, match=rf"{BOND_YIELD_COLUMN}.*2007-08-09"):
        prepare("sp500", start="2005-01-01", end="2008-12-31", observables=OBS,
                covariate_data=frame)


@pytest.mark.parametrize("n_stages", [4, 5, 6])
def test_gated_forbids_every_entry_into_forced_flow_but_from_the_stage_below(n_stages):
    names = dims.stage_names(n_stages)
    ff = names.index(dims.FORCED_FLOW)
    gated = allowed_transitions("gated", n_stages)
    sequential = allowed_transitions("sequential", n_stages)
    assert_array_equal(np.flatnonzero(gated[:, ff]), [ff - 1, ff])
    off_ff = np.ones(n_stages, dtype=bool)
    off_ff[ff] = False
    assert_array_equal(gated[:, off_ff], sequential[:, off_ff])


def test_the_gated_model_builds_with_zero_mass_from_discretionary_to_forced_flow(sp500):
    spec = ModelSpec(transitions="gated", observables=OBS)
    model = build_model(sp500.features.iloc[-600:], spec)
    point = model.initial_point()
    trans = model.compile_fn(model["P"], inputs=model.value_vars, on_unused_input="ignore")(
        point)
    ff = dims.STAGES.index(dims.FORCED_FLOW)
    disc = dims.STAGES.index(dims.DISCRETIONARY)
    assert trans[disc, ff] == 0.0 and trans[ff - 1, ff] > 0.0
    assert_allclose(trans.sum(axis=1), 1.0, atol=1e-12)
    assert np.isfinite(model.compile_logp()(point))


def test_a_window_the_bond_yield_does_not_cover_fits_without_it():
    early = load_dataset("treasury")["dgs10"].loc[:"2009-12-31"].rename(BOND_YIELD_COLUMN)
    with pytest.warns(DataWarning, match="every row, so the model takes nothing from it"):
        prep = prepare("sp500", start="2012-01-01", end="2018-12-31", observables=OBS,
                       covariate_data=early)
    assert prep.features["bond_vol_surprise"].isna().all()
    transform = prep.transform
    i = transform.features.index("bond_vol_surprise")
    assert (transform.center[i], transform.scale[i]) == (0.0, 1.0)
    spec = ModelSpec()
    start = em_start(prep.features, spec, seed=0, n_starts=1)
    assert all(np.all(np.isfinite(v)) for v in start.values())
    assert_allclose(start["sigma"][:, i], 1.0)
    model = build_model(prep.features, spec)
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_the_bond_source_is_recorded_and_an_update_must_use_the_same():
    user = load_dataset("treasury")["dgs10"].dropna().rename(BOND_YIELD_COLUMN)
    bundled = prepare("sp500", start="2005-01-01", end="2008-12-31", observables=OBS)
    own = prepare("sp500", start="2005-01-01", end="2008-12-31", observables=OBS,
                  covariate_data=user)
    assert (bundled.transform.bond_source, own.transform.bond_source) == ("bundled",
                                                                          "covariate_data")
    assert FeatureTransform.from_json(own.transform.to_json()) == own.transform
    assert "bond_source" not in prepare("sp500", start="2005-01-01", end="2008-12-31",
                                        observables=("vol_surprise",)).transform.to_dict()
    # the same series through either route gives the same values
    assert_allclose(own.raw["bond_vol_surprise"], bundled.raw["bond_vol_surprise"], atol=1e-12)
    with pytest.raises(DataError, match="from bundled .*drop column 'bond_yield_10y_pct'"):
        prepare("sp500", start="2009-01-01", end="2009-06-30", transform=bundled.transform,
                covariate_data=user)
    with pytest.raises(DataError, match="from covariate_data .*pass the same series"):
        prepare("sp500", start="2009-01-01", end="2009-06-30", transform=own.transform)
    prices = load_dataset("sp500").join(user)
    with pytest.raises(DataError, match="in the price frame; pass the bond yield as "
                                        "covariate_data"):
        prepare(prices, start="2005-01-01", end="2008-12-31", observables=OBS)


@pytest.mark.parametrize("date_column", ["observation_date", "DATE"])
def test_a_fred_download_of_dgs10_is_read_as_is(tmp_path, date_column):
    """A FRED CSV of DGS10 (its own date column name, '.' on bond-market holidays) given as
    the --covariate-file supplies the same observable as the bundled Treasury file, which
    holds the same FRED series."""
    from stressflow.inference.present.console import read_covariate_file

    dgs10 = load_dataset("treasury")["dgs10"].loc["1998-01-01":"2008-12-31"]
    # FRED lists every weekday, with '.' on bond-market holidays (the bundled file omits them)
    dgs10 = dgs10.reindex(pd.bdate_range("1998-01-01", "2008-12-31"))
    assert dgs10.isna().sum() > 50
    fred = pd.DataFrame({date_column: dgs10.index.strftime("%Y-%m-%d"),
                         "DGS10": dgs10.map(lambda v: "." if np.isnan(v) else f"{v:.2f}")})
    fred.to_csv(tmp_path / "DGS10.csv", index=False)
    data = read_covariate_file(str(tmp_path / "DGS10.csv"))
    kept = data.copy()
    own = prepare("sp500", start="2000-01-01", end="2008-12-31", observables=OBS,
                  covariate_data=data)
    pd.testing.assert_frame_equal(data, kept)  # the caller's frame is not modified
    bundled = prepare("sp500", start="2000-01-01", end="2008-12-31", observables=OBS)
    assert own.transform.bond_source == "covariate_data"
    assert_allclose(own.raw["bond_vol_surprise"], bundled.raw["bond_vol_surprise"], atol=1e-12)
    assert own.raw["bond_vol_surprise"].notna().all()
