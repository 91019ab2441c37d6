"""Many fits on dask.distributed: fit_windows / fit_many, the parallel backtest and their CLI.

One local cluster of two worker processes serves the whole module (starting one costs seconds,
and each worker compiles the model once); the fits are tiny (300-day windows, 2 chains x 30
draws), so most do not converge, which the summaries must say.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from numpy.testing import assert_allclose
from stressflow.data import DataError, read_prices
from stressflow.inference import load_fit
from stressflow.inference.apps import many
from stressflow.inference.apps.backtest import backtest
from stressflow.inference.apps.cluster import THREAD_VARS, open_client, run_tasks
from stressflow.inference.present.cli import main
from stressflow.models import dims

pytestmark = pytest.mark.filterwarnings(
    "ignore::stressflow.data.DataWarning", "ignore::stressflow.inference.FitWarning"
)

TINY = {"chains": 2, "draws": 30, "tune": 50, "seed": 2}


@pytest.fixture(scope="module")
def client():
    with open_client(workers=2) as c:
        yield c


def _env_of_worker():
    return {name: os.environ.get(name) for name in THREAD_VARS}


def _boom(x):
    if x == 2:
        raise RuntimeError("task two broke")
    return x * 10


def test_local_cluster_pins_worker_threads_and_reports_a_raising_task(client):
    envs = client.run(_env_of_worker)
    assert len(envs) == 2
    assert all(env == dict.fromkeys(THREAD_VARS, "1") for env in envs.values())
    calls = {f"t{x}": ((x,), {}) for x in (1, 2, 3)}
    outcomes = {o.name: o for o in run_tasks(client, _boom, calls)}
    assert outcomes["t1"].value == 10 and outcomes["t3"].value == 30
    assert outcomes["t2"].value is None and isinstance(outcomes["t2"].exception, RuntimeError)
    assert outcomes["t2"].error == "RuntimeError: task two broke"


def test_fit_windows_saves_each_fit_and_reports_a_bad_window(client, tmp_path):
    windows = [("2008-01-01", "2009-03-13"), ("2008-07-01", "2009-09-11"),
               ("2030-01-01", "2031-01-01")]
    given = list(windows)
    ds = many.fit_windows("sp500", windows, out_dir=tmp_path, scheduler=client,
                          progress=False, **TINY)
    assert windows == given  # the caller's list is not modified
    names = ["2008-01-01_2009-03-13", "2008-07-01_2009-09-11", "2030-01-01_2031-01-01"]
    assert ds[dims.WINDOW].values.tolist() == names
    assert ds["filtered"].dims == (dims.WINDOW, dims.TIME, dims.STAGE)
    assert ds[dims.STAGE].values.tolist() == list(dims.STAGES)
    assert ds["window_start"].values[0] == np.datetime64("2008-01-01")
    # the bad window failed with the data's own message; the others went on
    assert ds["status"].values[2] == "failed" and "DataError" in ds["message"].values[2]
    assert ds["divergences"].values[2] == -1 and ds["file"].values[2] == ""
    assert set(ds["status"].values[:2]) <= {"ok", "not_converged"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{n}.nc" for n in names[:2]] + [many.SUMMARY_FILE])
    xr.testing.assert_identical(many.load_summary(tmp_path / many.SUMMARY_FILE), ds)
    prices = read_prices("sp500")
    for i, name in enumerate(names[:2]):
        fit = load_fit(tmp_path / f"{name}.nc")
        days = pd.DatetimeIndex(fit["stages"][dims.TIME].values)
        expected = prices.loc[given[i][0]:given[i][1]].index
        assert days.equals(expected)
        assert ds["n_days"].values[i] == len(days) and ds["fit_end"].values[i] == days[-1]
        row = ds["filtered"].isel({dims.WINDOW: i})
        assert_allclose(row.sel({dims.TIME: days}).values, fit["stages"]["filtered"].values)
        outside = ~ds[dims.TIME].to_index().isin(days)
        assert np.isnan(row.values[outside]).all()
        # the status says what check_fit said
        assert (ds["status"].values[i] == "not_converged") == bool(ds["message"].values[i])
        assert 50 < ds["peak_rss_mb"].values[i] < 20_000
        if ds["compile_cached"].values[i]:
            assert ds["worker_task"].values[i] > 1  # a worker compiles once, then reuses


def test_fit_many_assets_and_names(client, tmp_path):
    spy = read_prices("spy")
    before = spy.copy()
    ds = many.fit_many({"sp500": "sp500", "spy": spy}, start="2008-06-01", end="2009-08-31",
                       out_dir=tmp_path, scheduler=client.scheduler.address, progress=False,
                       **TINY)
    pd.testing.assert_frame_equal(spy, before)
    assert ds[dims.ASSET].values.tolist() == ["sp500", "spy"]
    assert set(ds["status"].values) <= {"ok", "not_converged"}
    assert json.loads(ds.attrs["fit_kwargs"])["cores"] == 1
    assert (tmp_path / "sp500.nc").exists() and (tmp_path / "spy.nc").exists()
    with pytest.raises(ValueError, match="not usable as a file name"):
        many.fit_many({"../x": "sp500"}, out_dir=tmp_path, scheduler=client)
    with pytest.raises(ValueError, match="given twice"):
        many.fit_windows("sp500", [("2008-01-01", "2009-01-01")] * 2, out_dir=tmp_path,
                         scheduler=client)


def test_fit_rejects_bad_cores():
    from stressflow.inference import fit

    with pytest.raises(ValueError, match="cores must be an integer >= 1"):
        fit("sp500", cores=0)


def test_rolling_windows():
    prices = read_prices("sp500")
    wins = many.rolling_windows(prices, window_days=300, step=20, n_windows=3,
                                end="2018-12-31")
    idx = prices.index
    last = idx.get_loc(pd.Timestamp("2018-12-31"))
    assert [w[1] for w in wins] == [idx[last - 40], idx[last - 20], idx[last]]
    assert all(idx.get_loc(e) - idx.get_loc(s) == 299 for s, e in wins)
    with pytest.raises(DataError, match="no window"):
        many.rolling_windows(prices.iloc[:100], window_days=300, step=20)


def test_parallel_backtest_equals_serial(client):
    kwargs = dict(start="2009-03-02", end="2009-03-13", refit_every=5, window="rolling",
                  window_days=300, **TINY)
    # serial here (both chains at once, fit's default cores), parallel on the workers (one
    # chain at a time, pinned thread pools, each worker's own compile)
    serial = backtest("sp500", **kwargs)
    parallel = backtest("sp500", scheduler=client, **kwargs)
    pd.testing.assert_frame_equal(serial, parallel, check_exact=True)
    assert serial.attrs["refits"] == parallel.attrs["refits"]
    assert len(serial.attrs["refits"]) == 2


def test_parallel_backtest_raises_a_refit_error(client):
    with pytest.raises(ValueError, match="chains must be an integer"):
        backtest("sp500", start="2009-03-02", end="2009-03-13", refit_every=5,
                 window="rolling", window_days=300, scheduler=client, chains=0)


def test_cli_backtest_and_fit_many(client, tmp_path, capsys):
    address = client.scheduler.address
    out = tmp_path / "bt.csv"
    code = main(["backtest", "sp500", "--start", "2009-03-02", "--end", "2009-03-06",
                 "--refit-every", "5", "--window", "rolling", "--window-days", "300",
                 "--chains", "2", "--draws", "30", "--tune", "50", "--seed", "2",
                 "--scheduler", address, "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out)
    assert len(table) == 5 and "p_compulsion" in table
    assert json.loads((tmp_path / "bt.csv.refits.json").read_text())[0]["refit_date"] == (
        "2009-03-02")
    code = main(["fit-many", "sp500", "--window", "2008-01-01:2009-03-13",
                 "--window", "2030-01-01:2031-01-01", "--chains", "2", "--draws", "30",
                 "--tune", "50", "--scheduler", address, "--out-dir", str(tmp_path / "m"),
                 "--quiet"])
    text = capsys.readouterr()
    assert code == 1  # one window failed, and the message says why
    assert "window 2030-01-01_2031-01-01 failed: DataError" in text.err
    assert "wrote 1 fit file(s)" in text.out
    assert (tmp_path / "m" / "2008-01-01_2009-03-13.nc").exists()
    with pytest.raises(SystemExit) as exc:  # --workers and --scheduler exclude each other
        main(["backtest", "sp500", "--start", "2009-03-02", "--end", "2009-03-06",
              "--refit-every", "5", "--workers", "2", "--scheduler", address,
              "--out", str(out)])
    assert exc.value.code == 2
