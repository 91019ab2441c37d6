"""The panel with the issue's credit series, the ICE BofA HY OAS, passed by the user.

The OAS is not bundled (ICE's terms): it is read from the shared folder beside the repository
and the test is skipped where that folder is absent. Data: the bundled S&P 500 and the shared
HY OAS, 2006-07-03..2009-06-30 (fit to 2008-06-30, then updated).
"""

from __future__ import annotations

import warnings

import numpy as np
from stressflow.data.panel import PANELS, AssetSource, prepare_panel
from stressflow.inference.apps.feed.panel_update import update_panel
from stressflow.inference.fitting.panel_fit import fit_panel
from stressflow.inference.postprocess.panel_summary import convergence


def test_hy_oas_as_a_rate_asset_fits_and_updates(load_shared_series):
    oas = load_shared_series("us_hy_oas")
    before = oas.copy()
    assets = {"sp500": PANELS["us_markets"]["sp500"],
              "hy_oas": AssetSource(oas, "rate", "hy_oas_pct")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        panel = prepare_panel(assets, start="2006-07-03", end="2008-06-30")
        fit = fit_panel(panel, chains=2, draws=150, tune=200, seed=1)
        later = update_panel(fit, assets, end="2009-06-30")
    assert list(panel.features.columns[-3:]) == ["hy_oas:level", "hy_oas:change",
                                                 "hy_oas:change_vol"]
    assert convergence(fit)["divergences"] == 0
    top = later["stages"]["filtered"].sel(stage="forced_flow")
    # filtered out of sample: both markets stressed through the Lehman weeks, the OAS
    # above 15% in December 2008 included; the update never touched the caller's frame
    lehman = top.sel(time=slice("2008-09-29", "2008-12-31")).mean("time")
    assert (lehman > 0.8).all(), lehman.values
    assert not later["stages"]["in_fit_window"].sel(time="2008-10-10").item()
    assert oas.equals(before)
    assert np.isfinite(later["observed_data"]["raw_features"].sel(
        channel="hy_oas:level", time="2008-12-15").item())
