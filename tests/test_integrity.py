"""Issue 11: damaged files fail loudly, writes are atomic, and an update must continue the
fitted series. Fits are built without MCMC (``fake_fit``) on real S&P 500 rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import REPO_ROOT, SIM_MU, SIM_P, SIM_SIGMA
from fake_fit import fake_fit
from numpy.testing import assert_allclose
from stressflow.data import DataError, load_dataset, prepare, read_prices
from stressflow.inference import export, read_feed, update
from stressflow.inference.integrity import FILE_TRAILER
from stressflow.inference.present import cli
from stressflow.inference.schema import load_fit, save_fit
from stressflow.models import dims

END = "1999-12-31"


@pytest.fixture(scope="module")
def sp_fit():
    """A fit-shaped tree of S&P 500 1997-1999 (source ``sp500``), no MCMC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prep = prepare("sp500", start="1997-01-01", end=END)
    return fake_fit(prep, SIM_MU, SIM_SIGMA, SIM_P, source="sp500")


@pytest.fixture(scope="module")
def sp_rows():
    return read_prices("sp500").loc["2000-01-01":"2000-03-31"]


def _identical(a: xr.DataTree, b: xr.DataTree) -> None:
    for node in a.subtree:
        xr.testing.assert_identical(node.to_dataset(inherit=False),
                                    b[node.path].to_dataset(inherit=False))
    assert dict(a.attrs) == dict(b.attrs)


# ------------------------------------------------------------------------------ checksums


def test_round_trip_is_identical_and_leaves_no_checksum_attrs(sp_fit, tmp_path):
    path = save_fit(sp_fit, tmp_path / "fit.nc")
    loaded = load_fit(path)
    _identical(sp_fit, loaded)
    tail = path.read_bytes()[-(len(FILE_TRAILER) + 65):]
    assert tail.startswith(FILE_TRAILER) and tail.endswith(b"\n")
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]  # no temporary file left


def test_fit_file_with_20_kb_zeroed_in_the_middle_fails_to_load(sp_fit, tmp_path):
    path = save_fit(sp_fit, tmp_path / "fit.nc")
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid - 10_000:mid + 10_000] = bytes(20_000)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"fit.nc is damaged: its SHA-256 differs"):
        load_fit(path)
    assert cli.main(["summary", str(path)]) == 1


def test_a_changed_variable_is_named(sp_fit, tmp_path):
    """Without the file trailer (e.g. rewritten by an HDF5 tool), the variable's own checksum
    still catches an edit and names it."""
    path = save_fit(sp_fit, tmp_path / "fit.nc")
    data = path.read_bytes()
    path.write_bytes(data[:-(len(FILE_TRAILER) + 65)])
    _identical(sp_fit, load_fit(path))  # the trailer is optional
    with h5py.File(path, "r+") as f:
        f["stages/smoothed"][5, 0] = 0.123
    with pytest.raises(ValueError, match=r"variable /stages/smoothed does not match its checksum"):
        load_fit(path)


def test_export_checksums(sp_fit, tmp_path):
    csv = export(sp_fit, tmp_path / "feed.csv")
    read_feed(csv)
    text = csv.read_text().splitlines()
    text[10] = text[10].replace("0.", "1.", 1)
    csv.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"feed.csv is damaged: its SHA-256 differs"):
        read_feed(csv)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pqt = export(sp_fit, tmp_path / "feed.parquet", format="parquet")
    read_feed(pqt)
    table = pq.read_table(pqt)
    column = table.column_names.index("p_compulsion")
    values = table.column(column).to_numpy().copy()
    values[3] += 0.01
    table = table.set_column(column, "p_compulsion", pa.array(values))
    pq.write_table(table, pqt)
    with pytest.raises(ValueError, match=r"column 'p_compulsion' does not match its stored"):
        read_feed(pqt)


# ------------------------------------------------------------------------------ atomic writes

_WRITER = r"""
import sys, time
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.schema import load_fit, save_fit

fit = load_fit(sys.argv[1])
fit.attrs["source"] = "changed"
original = xr.DataTree.to_netcdf

def slow(self, path, **kwargs):
    original(self, path, **kwargs)          # the new file is written to the temporary path,
    print("WRITTEN", path, flush=True)     # then the writer is killed before the rename
    time.sleep(120)

xr.DataTree.to_netcdf = slow
save_fit(fit, sys.argv[1])
"""


def test_writer_killed_mid_write_leaves_the_old_file(sp_fit, tmp_path):
    path = save_fit(sp_fit, tmp_path / "fit.nc")
    before = path.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("WRITTEN"), line
        tmp = line.split(maxsplit=1)[1].strip()
        assert os.path.dirname(tmp) == str(tmp_path) and tmp != str(path)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert path.read_bytes() == before
    _identical(sp_fit, load_fit(path))


def test_writing_into_a_missing_folder_or_onto_a_folder_says_so(sp_fit, tmp_path):
    """The message names the path asked for, not the temporary file beside it."""
    target = tmp_path / "missing" / "fit.nc"
    with pytest.raises(FileNotFoundError, match=rf"cannot write {target}: the folder "
                       rf"{target.parent} does not exist"):
        save_fit(sp_fit, target)
    with pytest.raises(IsADirectoryError, match="it is a folder; give a file name"):
        save_fit(sp_fit, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_update_out_never_overwrites_its_input(sp_fit, sp_rows, tmp_path, capsys,
                                               monkeypatch):
    path = save_fit(sp_fit, tmp_path / "fit.nc")
    before = path.read_bytes()
    new = tmp_path / "new.csv"
    sp_rows.reset_index().to_csv(new, index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "link.nc").symlink_to(path)
    for out in (str(path), "fit.nc", f"{tmp_path}/./fit.nc", "~/fit.nc", "link.nc"):
        assert cli.main(["update", str(path), str(new), "--out", out]) == 2
        assert "is the input fit" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert cli.main(["update", str(path), str(new), "--out", str(tmp_path / "b.nc")]) == 0


# ------------------------------------------------------------------------------ update seam


def test_update_with_another_markets_rows_is_refused(sp_fit):
    vw = read_prices("vw").loc["2000-01-01":"2000-03-31"]
    with pytest.raises(DataError, match=r"first new close .* times below the last stored close"
                                        r".*another market"):
        update(sp_fit, vw)
    with pytest.raises(DataError, match=r"bundled dataset 'sp500' but the new rows are 'vw'"):
        update(sp_fit, "vw")


def test_update_with_rescaled_volume_or_a_gap_is_refused(sp_fit, sp_rows):
    rows = sp_rows.copy()
    rows["volume"] /= 1000.0
    with pytest.raises(DataError, match=r"volume .* times the fit's .* factor 100"):
        update(sp_fit, rows)
    with pytest.raises(DataError, match=r"start on 2000-02-01, 22 business days after .* "
                                        r"1999-12-31"):
        update(sp_fit, sp_rows.loc["2000-02-01":])
    with pytest.warns(UserWarning, match=r"1 gap\(s\).*1999-12-31 -> 2000-02-01"):
        out = update(sp_fit, sp_rows.loc["2000-02-01":], check_seam=False)
    assert out.attrs["feed_end"] == "2000-03-31"


def test_update_continuing_the_series_passes(sp_fit, sp_rows):
    out = update(sp_fit, sp_rows)
    assert out.attrs["feed_end"] == "2000-03-31"
    # a level break inside the new rows is the data checks' business, not the seam's
    rows = sp_rows.copy()
    rows.loc["2000-02-15", ["open", "high", "low", "close"]] *= 1000
    with pytest.warns(UserWarning, match=r"1 suspected bad tick.*2000-02-15"):
        out = update(sp_fit, rows)
    # masked (bad_ticks="mask"): the day's spread, volatility and impact and the next day's
    # impact (its return starts from the masked close) are missing, not absurd; volume and
    # every other day's volatility are as without the bad tick
    raw = out["observed_data"]["raw_features"].transpose(dims.TIME, dims.FEATURE).to_pandas()
    clean = update(sp_fit, sp_rows)["observed_data"]["raw_features"].transpose(
        dims.TIME, dims.FEATURE).to_pandas()
    assert raw.loc["2000-02-15", ["spread", "volatility", "impact"]].isna().all()
    assert np.isnan(raw.loc["2000-02-16", "impact"])
    assert raw.loc["2000-02-15", "volume"] == clean.loc["2000-02-15", "volume"]
    others = raw.index != "2000-02-15"
    assert_allclose(raw.loc[others, "volatility"], clean.loc[others, "volatility"])
    assert raw["impact"].abs().max() <= clean["impact"].abs().max()


def test_cli_update_prints_data_warnings_like_fit(sp_fit, sp_rows, tmp_path, capsys):
    path = save_fit(sp_fit, tmp_path / "fit.nc")
    rows = sp_rows.reset_index()
    rows.loc[5, "high"] = np.nan
    rows.to_csv(tmp_path / "new.csv", index=False)
    assert cli.main(["update", str(path), str(tmp_path / "new.csv"), "--out",
                     str(tmp_path / "out.nc")]) == 0
    err = capsys.readouterr().err
    assert "warning (DataWarning): empty cells in the window (high: 1)" in err
    assert "warnings.warn" not in err and ".py:" not in err


def test_cli_fit_defaults_agree_with_the_api():
    """`stressflow fit` stores the log_likelihood group by default, like fit()."""
    import inspect

    from stressflow.inference import fit

    args = cli.build_parser().parse_args(["fit", "--dataset", "sp500"])
    default = inspect.signature(fit).parameters["pointwise_loglik"].default
    assert args.pointwise_loglik is default is True
    args = cli.build_parser().parse_args(["fit", "--dataset", "sp500", "--no-pointwise-loglik"])
    assert args.pointwise_loglik is False
    quiet = cli.build_parser().parse_args(["fit", "--dataset", "sp500", "--quiet"])
    assert cli.show_progress(quiet) is False
    forced = cli.build_parser().parse_args(["fit", "--dataset", "sp500", "--progress"])
    assert cli.show_progress(forced) is True
    plain = cli.build_parser().parse_args(["fit", "--dataset", "sp500"])
    assert cli.show_progress(plain) is sys.stderr.isatty()


def test_loaded_dataset_is_untouched_by_the_checks():
    frame = load_dataset("sp500").loc["1999":"2000"]
    copy = frame.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare(frame, bad_ticks="mask")
    pd.testing.assert_frame_equal(frame, copy)
