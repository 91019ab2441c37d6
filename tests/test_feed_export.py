"""The risk feed's files: the export schema column by column, save/load in a new process, fit
files refused, and the ``update`` / ``export`` commands (the feed itself: ``test_feed.py``).

Uses the session's small real fit (S&P 500 2006-2008) and its update with the first half of
2009 (``feed_fixtures.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import REPO_ROOT
from feed_fixtures import FIT_END
from numpy.testing import assert_array_equal
from stressflow.inference import load_fit, save_fit
from stressflow.inference.apps.feed import (
    FEED_SCHEMA,
    FEED_SCHEMA_VERSION,
    export,
    feed,
    forecast,
    read_feed,
    update,
)
from stressflow.inference.present import cli

pytestmark = pytest.mark.filterwarnings(
    "ignore::stressflow.data.DataWarning", "ignore::stressflow.inference.FitWarning"
)


def test_feed_schema_is_documented():
    names = [c.name for c in FEED_SCHEMA]
    assert len(set(names)) == len(names) and names[0] == "date"
    assert isinstance(FEED_SCHEMA_VERSION, int)
    for col in FEED_SCHEMA:
        np.dtype(col.dtype)  # a valid dtype
        assert len(col.meaning) > 15
    assert "y_1..y_t" in dict((c.name, c.meaning) for c in FEED_SCHEMA)["p_compulsion"]
    assert "y_1..y_T" in dict((c.name, c.meaning) for c in FEED_SCHEMA)["smoothed_orderly"]


_ARROW_TYPES = {"datetime64[ns]": "timestamp[ns]", "float64": "double", "bool": "bool",
                "int64": "int64"}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_schema_column_by_column(updated, tmp_path, fmt):
    path = export(updated, tmp_path / f"feed.{fmt}", format=fmt)
    expected = feed(updated)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        assert schema.names == [c.name for c in FEED_SCHEMA]
        for col in FEED_SCHEMA:
            assert str(schema.field(col.name).type) == _ARROW_TYPES[col.dtype], col.name
        meta = json.loads(schema.metadata[b"stressflow"])
        raw = pd.read_parquet(path)
    else:
        header = path.read_text().splitlines()[0].split(",")
        assert header == [c.name for c in FEED_SCHEMA]
        meta = json.loads((tmp_path / "feed.csv.meta.json").read_text())
        raw = pd.read_csv(path)
        assert raw["date"].iloc[0] == "2006-01-03" and raw["fit_data_end"].iloc[-1] == FIT_END
    assert meta["feed_schema_version"] == FEED_SCHEMA_VERSION
    assert [c["name"] for c in meta["columns"]] == [c.name for c in FEED_SCHEMA]
    assert meta["fit_end"] == FIT_END and meta["feed_end"] == "2009-06-30"
    assert meta["fit_data_hash"] == updated.attrs["data_hash"]
    for col in FEED_SCHEMA:
        if col.dtype == "datetime64[ns]":
            values = pd.to_datetime(raw[col.name]).to_numpy("datetime64[ns]")
            assert_array_equal(values, expected[col.name].to_numpy())
        else:
            assert raw[col.name].dtype == np.dtype(col.dtype), col.name
            assert_array_equal(raw[col.name].to_numpy(), expected[col.name].to_numpy(),
                               err_msg=col.name)
    pd.testing.assert_frame_equal(read_feed(path), expected, check_exact=True)


# --------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------

_CHILD = """
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from stressflow.data import read_prices
from stressflow.inference import load_fit
from stressflow.inference.apps.feed import feed, forecast, update
fit = load_fit(sys.argv[1])
f = feed(fit)
more = update(fit, read_prices("sp500").loc["2009-07-01":"2009-07-31"])
g = feed(more)
h = forecast(more, 30)
np.savez(sys.argv[2], **{k: f[k].to_numpy() for k in f.columns if k != "date"},
         **{"more_" + k: g[k].to_numpy() for k in g.columns if k != "date"},
         **{"fc_" + k: h[k].to_numpy() for k in h.columns})
"""


def test_save_load_round_trip_in_a_new_process(updated, prices, tmp_path):
    path = save_fit(updated, tmp_path / "fit.nc")
    loaded = load_fit(path)
    for name in updated.children:
        xr.testing.assert_identical(loaded[name].to_dataset(), updated[name].to_dataset())
    assert dict(loaded.attrs) == dict(updated.attrs)
    out = tmp_path / "child.npz"
    subprocess.run([sys.executable, "-c", _CHILD, str(path), str(out)], check=True,
                   cwd=REPO_ROOT, timeout=300)
    child = np.load(out, allow_pickle=False)
    f = feed(updated)
    more = update(updated, prices.loc["2009-07-01":"2009-07-31"])
    g = feed(more)
    h = forecast(more, 30)
    for k in f.columns.drop("date"):
        assert_array_equal(child[k], f[k].to_numpy(), err_msg=k)
    for k in g.columns.drop("date"):
        assert_array_equal(child["more_" + k], g[k].to_numpy(), err_msg=k)
    for k in h.columns:
        assert_array_equal(child["fc_" + k], h[k].to_numpy(), err_msg=k)


def test_load_fit_refuses_other_files(updated, tmp_path):
    future = updated.copy()
    future.attrs["schema_version"] = 99
    save_fit(future, tmp_path / "future.nc")
    with pytest.raises(ValueError, match=r"schema version 99 .* reads versions \[1, 2, 3\]"):
        load_fit(tmp_path / "future.nc")
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(ValueError, match="not a stressflow fit"):
        load_fit(tmp_path / "other.nc")
    (tmp_path / "text.nc").write_text("date,close\n2020-01-01,1\n")
    with pytest.raises(ValueError, match="not a stressflow fit"):
        load_fit(tmp_path / "text.nc")


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def test_cli_update_and_export(real_fit, prices, tmp_path, capsys):
    fit_path = save_fit(real_fit, tmp_path / "fit.nc")
    new = prices.loc["2009-01-01":"2009-02-27"].reset_index()
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "new_fit.nc"
    assert cli.main(["update", str(fit_path), str(tmp_path / "new.csv"), "--out", str(out)]) == 0
    assert "added 39 day(s) 2009-01-02 .. 2009-02-27" in capsys.readouterr().out
    expected = update(real_fit, prices.loc["2009-01-01":"2009-02-27"])
    assert_array_equal(load_fit(out)["stages"]["filtered"].values,
                       expected["stages"]["filtered"].values)
    pq_path = tmp_path / "feed.parquet"
    assert cli.main(["export", str(out), "--format", "parquet", "--out", str(pq_path)]) == 0
    assert "feed schema version" in capsys.readouterr().out
    pd.testing.assert_frame_equal(read_feed(pq_path), feed(expected), check_exact=True)
    # the same rows again: every one already stored, nothing to add, nothing written
    again = tmp_path / "again.nc"
    assert cli.main(["update", str(out), str(tmp_path / "new.csv"), "--out", str(again)]) == 1
    assert ("no day after the last stored date 2009-02-27 (they repeat 39 stored day(s)"
            in capsys.readouterr().err)
    assert not again.exists()


def test_cli_update_takes_the_bond_yield_from_where_the_fit_did(real_fit, prices, tmp_path,
                                                                capsys):
    """The default model's bond yield came from the bundled Treasury: a --covariate-file with
    another bond_yield_10y_pct is refused with the reason, and nothing is written."""
    from stressflow.data import load_dataset
    from stressflow.data.observables import BOND_YIELD_COLUMN

    fit_path = save_fit(real_fit, tmp_path / "fit.nc")
    prices.loc["2009-01-01":"2009-02-27"].reset_index().to_csv(tmp_path / "new.csv", index=False)
    bond = load_dataset("treasury")["dgs2"].dropna().rename(BOND_YIELD_COLUMN)
    bond.rename_axis("date").reset_index().to_csv(tmp_path / "bond.csv", index=False)
    out = tmp_path / "new_fit.nc"
    args = ["update", str(fit_path), str(tmp_path / "new.csv"), "--out", str(out)]
    assert cli.main([*args, "--covariate-file", str(tmp_path / "bond.csv")]) == 1
    assert "bond yield of bond_vol_surprise from bundled" in capsys.readouterr().err
    assert cli.main([*args, "--covariate-file", str(tmp_path / "none.csv")]) == 1
    assert "covariate file" in capsys.readouterr().err and not out.exists()
    assert cli.main(args) == 0


def test_cli_reads_other_column_names(real_fit, prices, tmp_path, capsys):
    """A Yahoo-style file (``Date, High, ..., Adj Close, Volume``) is read as is; other names
    take ``--date-column`` / ``--columns``, and the error without them says so in the command
    line's terms; a malformed ``--columns`` is refused before any work."""
    fit_path = save_fit(real_fit, tmp_path / "fit.nc")
    new = prices.loc["2009-01-01":"2009-02-27"].reset_index()
    expected = update(real_fit, prices.loc["2009-01-01":"2009-02-27"])["stages"]["filtered"]
    yahoo = new.rename(columns={"date": "Date", "high": "High", "low": "Low", "close": "Close",
                                "adj_close": "Adj Close", "volume": "Volume", "open": "Open"})
    yahoo.to_csv(tmp_path / "yahoo.csv", index=False)
    out = tmp_path / "a.nc"
    assert cli.main(["update", str(fit_path), str(tmp_path / "yahoo.csv"), "--out", str(out)]) == 0
    assert_array_equal(load_fit(out)["stages"]["filtered"].values, expected.values)
    german = new.rename(columns={"date": "Datum", "high": "Hoch", "low": "Tief",
                                 "close": "Schluss", "volume": "Umsatz"})
    german.to_csv(tmp_path / "de.csv", index=False)
    args = ["update", str(fit_path), str(tmp_path / "de.csv"), "--out", str(tmp_path / "b.nc")]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "(pass --date-column or --columns)" in err and "date_column=" not in err
    assert cli.main([*args, "--date-column", "Datum", "--columns",
                     "Hoch=high,Tief=low,Schluss=close,Umsatz=volume"]) == 0
    assert_array_equal(load_fit(tmp_path / "b.nc")["stages"]["filtered"].values, expected.values)
    assert cli.main(["fit", "--file", str(tmp_path / "de.csv"), "--columns", "Hoch:high",
                     "--out", str(tmp_path / "c.nc")]) == 2
    assert "--columns entry 'Hoch:high' is not FROM=TO" in capsys.readouterr().err
