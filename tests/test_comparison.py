"""Model comparison by PSIS-LOO (apps.comparison, the compare command)."""

from __future__ import annotations

import numpy as np
import pytest
from stressflow.inference import save_fit
from stressflow.inference.apps.comparison import LOO_CAVEAT, compare_fits
from stressflow.inference.present.cli import main

try:
    from tests.conftest import SIM_MU, SIM_P, SIM_SIGMA, make_prepared, simulate_stage_hmm
    from tests.fake_fit import fake_fit
except ImportError:  # pytest's rootdir-less "prepend" import of tests/test_*.py
    from conftest import SIM_MU, SIM_P, SIM_SIGMA, make_prepared, simulate_stage_hmm
    from fake_fit import fake_fit


@pytest.fixture(scope="module")
def fits():
    features, _ = simulate_stage_hmm(400, seed=11, n_missing=3)
    prepared = make_prepared(features)
    truth = fake_fit(prepared, SIM_MU, SIM_SIGMA, SIM_P, pointwise_loglik=True, n_draws=40)
    # the same model with stage means shrunk halfway to zero: a worse predictive model
    shrunk = fake_fit(prepared, 0.5 * np.asarray(SIM_MU), SIM_SIGMA, SIM_P,
                      pointwise_loglik=True, n_draws=40)
    other_days = fake_fit(make_prepared(simulate_stage_hmm(300, seed=2)[0]), SIM_MU, SIM_SIGMA,
                          SIM_P, pointwise_loglik=True, n_draws=40)
    no_ll = fake_fit(prepared, SIM_MU, SIM_SIGMA, SIM_P, n_draws=40)
    return truth, shrunk, other_days, no_ll


def test_loo_prefers_the_true_parameters_and_sums_the_pointwise_terms(fits):
    import arviz as az

    truth, shrunk, _, _ = fits
    table = compare_fits({"truth": truth, "shrunk": shrunk})
    assert list(table.index) == ["truth", "shrunk"]
    assert table.loc["shrunk", "elpd_diff"] < -2 * table.loc["shrunk", "dse"] < 0
    # elpd_loo is the sum over days of the PSIS-LOO pointwise terms of log_likelihood/y
    loo = az.loo(truth, pointwise=True)
    assert table.loc["truth", "elpd_loo"] == pytest.approx(float(loo.elpd_i.sum()), rel=1e-9)
    assert table.attrs["caveat"] == LOO_CAVEAT
    assert (table["n_days"] == 400).all()


def test_compare_refuses_what_it_cannot_compare(fits):
    truth, _, other_days, no_ll = fits
    with pytest.raises(ValueError, match="at least two"):
        compare_fits({"a": truth})
    with pytest.raises(ValueError, match="other days"):
        compare_fits({"a": truth, "b": other_days})
    with pytest.raises(ValueError, match="log_likelihood"):
        compare_fits({"a": truth, "b": no_ll})


def test_cli_compare(fits, tmp_path, capsys):
    truth, shrunk, _, _ = fits
    a = save_fit(truth, tmp_path / "a.nc")
    b = save_fit(shrunk, tmp_path / "b.nc")
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp.csv")]) == 0
    out = capsys.readouterr().out
    assert "elpd_loo" in out and "not an out-of-sample test" in out
    assert (tmp_path / "cmp.csv").is_file()
    assert main(["compare", str(a), str(tmp_path / "missing.nc")]) == 1
