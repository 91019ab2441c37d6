"""Every argument that counts something (draws, windows, stages, horizons, workers) is checked
by one function, :func:`stressflow.models.messages.require_int`, so each refuses the same
values (booleans, floats, values below its minimum, NumPy or Python) with the same message.

Each public call site is called here with the bundled S&P 500 where it needs data; every
check runs before any data is read or any model is built."""

from __future__ import annotations

import numpy as np
import pytest
from stressflow.data import load_dataset, prepare
from stressflow.inference import fit
from stressflow.inference.apps.backtest import backtest
from stressflow.inference.apps.cluster import open_client
from stressflow.inference.apps.episodes import compulsion_scores
from stressflow.inference.apps.feed.forecast import forecast
from stressflow.inference.apps.many import rolling_windows
from stressflow.inference.postprocess.paths import sample_stage_paths, stage_paths
from stressflow.models.dims import stage_names
from stressflow.models.messages import require_int
from stressflow.models.panel.spec import PanelSpec
from stressflow.models.spec import ModelSpec


@pytest.fixture(scope="module")
def sp500():
    """The bundled S&P 500, 2003-2004."""
    return load_dataset("sp500").loc["2003":"2004"]


def _open(**kwargs):
    with open_client(**kwargs):
        pass


#: (label, call taking the value and the bundled prices, the name in the message, minimum);
#: the functions in NONE_OK also take None
CALL_SITES = [
    ("fit chains", lambda v, d: fit(d, chains=v), "chains", 1),
    ("fit draws", lambda v, d: fit(d, draws=v), "draws", 1),
    ("fit tune", lambda v, d: fit(d, tune=v), "tune", 0),
    ("fit cores", lambda v, d: fit(d, cores=v), "cores", 1),
    ("fit seed", lambda v, d: fit(d, seed=v), "seed", 0),
    ("prepare window", lambda v, d: prepare(d, volume_window=v), "volume_window", 1),
    ("prepare min_rows", lambda v, d: prepare(d, min_rows=v), "min_rows", 2),
    ("prepare max_stale", lambda v, d: prepare(d, covariate_max_stale=v),
     "covariate_max_stale", 0),
    ("stage_names", lambda v, d: stage_names(v), "n_stages", 2),
    ("ModelSpec", lambda v, d: ModelSpec(n_stages=v), "n_stages", 2),
    ("PanelSpec", lambda v, d: PanelSpec(("a",), ("a:x",), ("a",), ("a:x",), n_stages=v),
     "n_stages", 2),
    ("stage_paths draws", lambda v, d: stage_paths(None, v), "n_draws", 1),
    ("stage_paths per draw", lambda v, d: stage_paths(None, 1, paths_per_draw=v),
     "paths_per_draw", 1),
    ("sample_stage_paths", lambda v, d: sample_stage_paths(None, n_draws=v), "n_draws", 1),
    ("compulsion_scores", lambda v, d: compulsion_scores(np.zeros((1, 3), int), np.zeros(1),
                                                         np.arange(3), lead_in=v), "lead_in", 0),
    ("forecast", lambda v, d: forecast(None, v), "horizon", 1),
    ("rolling_windows", lambda v, d: rolling_windows(d, window_days=v, step=1),
     "window_days", 1),
    ("backtest", lambda v, d: backtest(d, start="2004-01-02", end="2004-06-30",
                                       refit_every=v), "refit_every", 1),
    ("backtest rolling", lambda v, d: backtest(d, start="2004-01-02", end="2004-06-30",
                                               refit_every=20, window="rolling", window_days=v),
     "window_days (window='rolling')", 2),
    ("open_client threads", lambda v, d: _open(threads_per_task=v), "threads_per_task", 1),
    ("open_client workers", lambda v, d: _open(workers=v), "workers", 1),
]


NONE_OK = {"fit cores", "sample_stage_paths"}


@pytest.mark.parametrize(("label", "call", "name", "minimum"), CALL_SITES,
                         ids=[c[0] for c in CALL_SITES])
@pytest.mark.parametrize("kind", ["bool", "float", "below", "numpy_below"])
def test_every_count_argument_refuses_the_same_values(sp500, label, call, name, minimum,
                                                       kind):
    value, text = {"bool": (True, "True"), "float": (2.0, "2.0"),
                   "below": (minimum - 1, str(minimum - 1)),
                   "numpy_below": (np.int64(minimum - 1), str(minimum - 1))}[kind]
    before = sp500.copy()
    with pytest.raises(ValueError) as info:
        call(value, sp500)
    also = " or None" if label in NONE_OK else ""
    assert str(info.value) == f"{name} must be an integer >= {minimum}{also}, got {text}"
    assert sp500.equals(before)


def test_require_int_returns_a_python_int_and_passes_none_only_when_allowed():
    out = require_int("n", np.int64(3), 1)
    assert out == 3 and type(out) is int
    assert require_int("n", 0, 0) == 0
    assert require_int("n", None, 1, allow_none=True) is None
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got None$"):
        require_int("n", None, 1)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1 or None, got 0$"):
        require_int("n", 0, 1, allow_none=True)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got True$"):
        require_int("n", np.True_, 1)
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got '3'$"):
        require_int("n", "3", 1)
