"""Summaries of the SBC runs: ``bench/sbc/visits.py --fitted`` (the split of the simulations on
what the fit says, each stage's expected days, read from ``run_sbc.py``'s reliability record)
and ``plot_sbc.by_stage`` (the rank dispersion per stage)."""

from __future__ import annotations

import pandas as pd
from numpy.testing import assert_allclose

from bench.sbc import plot_sbc, visits


def test_fitted_visits_sum_the_smoothed_probabilities_per_stage(tmp_path):
    """Expected days of stage k = the sum over its probability bins of ``sum_p`` of the
    smoothed kind only (the filtered rows of the same record are left out)."""
    rows = [
        (0, "smoothed", "orderly", 0, 10, 0.3), (0, "smoothed", "orderly", 9, 90, 89.5),
        (0, "smoothed", "forced_flow", 0, 99, 0.7), (0, "smoothed", "forced_flow", 9, 1, 0.99),
        (0, "filtered", "orderly", 9, 100, 99.0), (0, "filtered", "forced_flow", 0, 100, 1.0),
        (3, "smoothed", "orderly", 9, 100, 100.0), (3, "smoothed", "forced_flow", 0, 100, 0.0),
    ]
    path = tmp_path / "rel.csv"
    pd.DataFrame(rows, columns=["seed", "kind", "stage", "bin", "n", "sum_p"]).assign(
        n_true=0).to_csv(path, index=False)
    days = visits.fitted_visits(path).set_index("seed")
    assert list(days.index) == [0, 3]
    assert_allclose(days.loc[0, "days_orderly"], 89.8)
    assert_allclose(days.loc[0, "days_forced_flow"], 1.69)
    assert_allclose(days.loc[3, ["days_orderly", "days_forced_flow"]], [100.0, 0.0])


def test_dispersion_by_stage_reads_each_stage_s_own_scalars():
    """Stage 0's ranks all 0 (u = 0.025: dispersion 12 x 0.475^2 = 2.7075), stage 1's all 9 of
    L = 19 (u = 0.475: 0.0075); P has no row for stage 1 here, so its cell is empty."""
    table = pd.DataFrame({"mu[0,0]": [0, 0, 0], "mu[0,1]": [0, 0, 0], "mu[1,0]": [9, 9, 9],
                          "sigma[0,0]": [0, 0, 0], "sigma[1,0]": [9, 9, 9],
                          "P[0,1]": [0, 0, 0]})
    rows = plot_sbc.by_stage(table, 19, ["calm", "break"])
    assert rows[0].startswith("| 0: calm | 2.708 [2.708, 2.708] | 2.708")
    assert rows[1] == "| 1: break | 0.008 [0.008, 0.008] | 0.008 [0.008, 0.008] |  |"
