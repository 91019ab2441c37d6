"""Figures of a fit and the ``plot`` subcommand (stressflow.inference.present.plots)."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from stressflow.inference import save_fit
from stressflow.inference.present import plots
from stressflow.inference.present.commands import register_plot
from stressflow.models import dims

pytest.importorskip("matplotlib", reason="plots need the optional matplotlib dependency")

try:
    from tests.conftest import SIM_MU, SIM_P, SIM_SIGMA, make_prepared, simulate_stage_hmm
    from tests.fake_fit import fake_fit, with_close
except ImportError:  # pytest's rootdir-less "prepend" import of tests/test_*.py
    from conftest import SIM_MU, SIM_P, SIM_SIGMA, make_prepared, simulate_stage_hmm
    from fake_fit import fake_fit, with_close

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fit():
    features, _ = simulate_stage_hmm(260, seed=5, n_missing=6)
    rng = np.random.default_rng(0)
    # a price path with a 20% fall and a 25% recovery so that episodes exist
    drift = np.concatenate([np.full(80, 0.001), np.full(40, -0.0056), np.full(140, 0.0016)])
    close = 50 * np.exp(np.cumsum(drift + 0.002 * rng.standard_normal(260)))
    prepared = with_close(make_prepared(features), close)
    return fake_fit(prepared, SIM_MU, SIM_SIGMA, SIM_P, n_chains=2, n_draws=10, source="")


def _png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000
    return data


def test_overview_observables_transitions_write_pngs(fit, tmp_path):
    fig = plots.plot_overview(fit, n_draws=10, paths_per_draw=3)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) >= 2 and all(0 <= float(t) <= 1 for t in texts)  # p_compulsion labels
    _png(plots.save_figure(fig, tmp_path / "overview.png"))
    fig = plots.plot_observables(fit)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 4
    _png(plots.save_figure(fig, tmp_path / "observables.png"))
    fig = plots.plot_transitions(fit)
    # each cell (x = j, y = i) shows the posterior mean of P[i, j] = Pr(stage_t = j |
    # stage_{t-1} = i), computed here from the draws, so a transposed heatmap fails
    mean = fit["posterior"]["P"].mean((dims.CHAIN, dims.DRAW)).transpose(
        dims.STAGE_FROM, dims.STAGE_TO).values
    assert not np.allclose(mean, mean.T)
    cells = {tuple(int(round(v)) for v in t.get_position()): t.get_text()
             for t in fig.axes[0].texts}
    assert len(cells) == 16
    for (j, i), text in cells.items():
        assert text.startswith(f"{mean[i, j]:.3f}\n[")
    _png(plots.save_figure(fig, tmp_path / "transitions.png"))


def test_overview_uses_a_given_episode_table(fit, tmp_path):
    index = pd.DatetimeIndex(fit["observed_data"][dims.TIME].values)
    table = pd.DataFrame({"direction": ["rally"], "start": [index[10]], "end": [index[20]],
                          "p_compulsion": [0.42]})
    fig = plots.plot_overview(fit, episode_table=table)
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.42"]
    with pytest.raises(ValueError, match="stressflow fit"):
        plots.plot_overview(fit["stages"])


def test_cli_plot_all_kinds(fit, tmp_path, capsys):
    path = save_fit(fit, tmp_path / "fake.nc")
    parser = argparse.ArgumentParser(prog="stressflow")
    sub = parser.add_subparsers(dest="command", required=True)
    register_plot(sub)
    for kind in ("overview", "observables", "transitions"):
        out = tmp_path / f"{kind}.png"
        args = parser.parse_args(["plot", str(path), "--out", str(out), "--kind", kind,
                                  "--n-draws", "5"])
        assert args.func(args) == 0
        _png(out)
    args = parser.parse_args(["plot", str(tmp_path / "nope.nc"), "--out", str(tmp_path / "x.png")])
    assert args.func(args) == 1
    assert "no fit file" in capsys.readouterr().err
