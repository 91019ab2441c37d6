"""``update`` given rows that repeat stored days (a whole re-downloaded history): the repeated
days are compared with what the fit stored and skipped; a revised or re-based history, or a
file with nothing new, is refused (real S&P 500 fit 2006-2008, shared with ``test_feed.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from stressflow.data import DataError
from stressflow.inference import save_fit
from stressflow.inference.apps.feed import update
from stressflow.inference.apps.feed.seam import REPEAT_RTOL, split_repeated
from stressflow.inference.present import cli

pytestmark = pytest.mark.filterwarnings(
    "ignore::stressflow.data.DataWarning", "ignore::stressflow.inference.FitWarning"
)


@pytest.fixture(scope="module")
def after(real_fit, prices):
    """The fit updated with January 2009 only (the reference)."""
    return update(real_fit, prices.loc["2009-01-01":"2009-01-31"])


def _added(tree) -> dict:
    return json.loads(tree.attrs["feed_last_update"])


def test_repeated_stored_days_are_checked_and_skipped(real_fit, prices, after):
    # the last three stored days, then January 2009
    overlap = update(real_fit, prices.loc["2008-12-29":"2009-01-31"])
    assert_array_equal(overlap["stages"]["filtered"].values, after["stages"]["filtered"].values)
    assert _added(overlap)["repeated_days_checked"] == 3
    assert _added(overlap)["earlier_rows_ignored"] == 0
    # the whole bundled history to 2009-01-31: 1985-2005 precede the fit and are left out
    whole = prices.loc[:"2009-01-31"]
    full = update(real_fit, whole.reset_index())  # as read from a CSV: a date column
    assert_array_equal(full["stages"]["filtered"].values, after["stages"]["filtered"].values)
    stored = real_fit["stages"].sizes["time"]
    assert _added(full)["repeated_days_checked"] == stored
    assert _added(full)["earlier_rows_ignored"] == int((whole.index < "2006-01-01").sum()) > 5000
    assert _added(full)["n_days"] == _added(after)["n_days"] == 20
    # a second update continues from the first one's stored days (2009-01 is stored now)
    again = update(after, prices.loc["2006-01-01":"2009-02-27"])
    assert _added(again)["repeated_days_checked"] == stored + 20
    assert _added(again)["first"] == "2009-02-02"


def test_a_revised_history_is_refused(real_fit, prices):
    rows = prices.loc["2008-06-02":"2009-01-31"].copy()
    rows.loc["2008-10-10", "close"] *= 1.01  # a revised close, inside the stored days
    with pytest.raises(DataError, match=r"but 1 of them differ .* column 'close' on 2008-10-10, "
                                        r"908\.2\d+ new against 899\.2\d+ stored.* pass only the "
                                        r"days after 2008-12-31"):
        update(real_fit, rows)
    rows = prices.loc["2008-06-02":"2009-01-31"].copy()
    rows.loc[:"2008-12-31", ["open", "high", "low", "close", "adj_close"]] *= 0.995  # re-based
    n_stored = len(prices.loc["2008-06-02":"2008-12-31"])
    with pytest.raises(DataError, match=rf"repeat {n_stored} stored day\(s\) .* but {n_stored} "
                                        r"of them differ"):
        update(real_fit, rows)
    rows = prices.loc["2008-06-02":"2009-01-31"].copy()
    rows.loc["2008-11-03", "volume"] = rows.loc["2008-11-03", "volume"] * (1 + 10 * REPEAT_RTOL)
    with pytest.raises(DataError, match=r"column 'volume' on 2008-11-03"):
        update(real_fit, rows)
    rows.loc["2008-11-03", "volume"] = prices.loc["2008-11-03", "volume"] * (1 + REPEAT_RTOL / 10)
    assert _added(update(real_fit, rows))["repeated_days_checked"] == n_stored  # print noise


def test_a_repeated_range_with_other_days_is_refused(real_fit, prices):
    rows = prices.loc["2008-06-02":"2009-01-31"].drop(index=prices.loc["2008-07-03":"2008-07-03"]
                                                      .index)
    with pytest.raises(DataError, match=r"not the same days \(it lacks 1 stored day\(s\): "
                                        r"2008-07-03\)"):
        update(real_fit, rows)
    extra = prices.loc["2008-06-02":"2009-01-31"].copy()
    extra.loc[np.datetime64("2008-07-04")] = extra.loc["2008-07-03"]  # a holiday, traded here
    extra = extra.sort_index()
    with pytest.raises(DataError, match=r"1 day\(s\) the fit does not hold: 2008-07-04"):
        update(real_fit, extra)


def test_nothing_new_is_refused(real_fit, prices):
    with pytest.raises(DataError, match=r"no day after the last stored date 2008-12-31 \(they "
                                        r"repeat 22 stored day\(s\), equal to the stored "
                                        r"values\); nothing to add"):
        update(real_fit, prices.loc["2008-12-01":"2008-12-31"])
    with pytest.raises(DataError, match=r"no day after the last stored date 2008-12-31; "):
        update(real_fit, prices.loc["2001-01-01":"2001-03-31"])
    # an older download, ending before the last stored day: compared, then nothing to add
    older = prices.loc["2008-06-02":"2008-11-28"]
    with pytest.raises(DataError, match=rf"no day after the last stored date 2008-12-31 \(they "
                                        rf"repeat {len(older)} stored day\(s\)"):
        update(real_fit, older)
    older = older.copy()
    older.loc["2008-11-03", "close"] *= 1.01
    with pytest.raises(DataError, match=r"differ .* column 'close' on 2008-11-03"):
        update(real_fit, older)


def test_split_repeated_on_its_own(prices):
    stored = prices.loc["2007-01-01":"2007-12-31"]
    after, n_rep, n_early = split_repeated(stored, prices.loc["2006-12-01":"2008-01-10"])
    assert (n_rep, n_early) == (len(stored), 20)
    assert after.index[0].strftime("%Y-%m-%d") == "2008-01-02" and len(after) == 7
    with_nan = stored.copy()
    with_nan.loc["2007-05-01", "open"] = np.nan
    new = prices.loc["2007-03-01":"2008-01-10"].copy()
    new.loc["2007-05-01", "open"] = np.nan  # missing in both: equal
    assert split_repeated(with_nan, new)[1] == len(stored.loc["2007-03-01":])
    new.loc["2007-05-01", "open"] = 1.0  # missing in the fit, present in the file: differs
    with pytest.raises(DataError, match=r"column 'open' on 2007-05-01, 1 new against nan"):
        split_repeated(with_nan, new)


def test_cli_update_with_the_whole_file(real_fit, prices, tmp_path, capsys):
    fit_path = save_fit(real_fit, tmp_path / "fit.nc")
    prices.loc[:"2009-01-31"].reset_index().to_csv(tmp_path / "all.csv", index=False)
    out = tmp_path / "new.nc"
    assert cli.main(["update", str(fit_path), str(tmp_path / "all.csv"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "added 20 day(s) 2009-01-02 .. 2009-01-30" in text
    assert f"{real_fit['stages'].sizes['time']} stored day(s) in the file matched" in text
