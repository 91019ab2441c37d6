"""The command line: ``stressflow fit`` / ``summary`` / ``datasets`` on bundled real data, and
its error paths (a message and an exit status, never a traceback)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from stressflow.inference import load_fit
from stressflow.inference.present.cli import main
from stressflow.models import dims

pytestmark = pytest.mark.filterwarnings(
    "ignore::stressflow.data.DataWarning", "ignore::stressflow.inference.FitWarning"
)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "sp.nc"
    code = main(["fit", "--dataset", "sp500", "--start", "2007-01-01", "--end", "2009-12-31",
                 "--chains", "2", "--draws", "60", "--tune", "60", "--seed", "3",
                 "--volume-dropouts", "mask", "--out", str(out)])
    assert code == 0
    return out


def test_fit_writes_a_loadable_fit(fitted):
    res = load_fit(fitted)
    assert res.attrs["source"] == "sp500"
    assert res.attrs["start"] == "2007-01-03" and res.attrs["end"] == "2009-12-31"
    opts = json.loads(res.attrs["fit_options"])
    assert (opts["chains"], opts["draws"], opts["tune"], opts["seed"]) == (2, 60, 60, 3)
    assert res["posterior"].sizes[dims.CHAIN] == 2 and res["posterior"].sizes[dims.DRAW] == 60
    # --volume-dropouts mask reaches prepare and is stored with the transform (for updates)
    report = json.loads(res.attrs["data_report"])
    assert report["volume_dropouts"] == "mask" and report["n_volume_dropouts"] > 0
    assert json.loads(res.attrs["transform"])["volume_dropouts"] == "mask"


def test_summary_prints_the_report(fitted, capsys):
    assert main(["summary", str(fitted), "--top", "3"]) == 0
    text = capsys.readouterr().out
    for needle in ("Stage means", "Expected duration", "share", "max R-hat",
                   "Pr(stage_t = forced_flow | y_1..y_T) (top 3)", "2008-"):
        assert needle in text, needle


def test_datasets_lists_the_bundled_series(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("sp500", "spy", "vix", "vw", "gme"):
        assert name in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["fit", "--dataset", "nope"], 2, "unknown dataset 'nope'"),
        (["fit"], 2, "exactly one of --dataset NAME or --file PATH"),
        (["fit", "--dataset", "sp500", "--file", "x.csv"], 2, "exactly one of"),
        (["fit", "--file", "/no/such/file.csv"], 1, "/no/such/file.csv"),
        (["fit", "--dataset", "sp500", "--start", "2030-01-01"], 1, "2030"),
        (["summary", "/no/such/fit.nc"], 1, "no fit file"),
    ],
)
def test_errors_are_messages(argv, code, message, capsys, tmp_path):
    assert main([*argv, *(["--out", str(tmp_path / "x.nc")] if argv[0] == "fit" else [])]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("command", [
    ["fit", "--dataset", "sp500"],
    ["evaluate"],
    ["backtest", "sp500", "--start", "2010-01-04", "--end", "2010-03-31", "--refit-every", "20"],
    ["episodes", "fit.nc"],
])
def test_an_unwritable_out_is_refused_before_any_work(command, tmp_path, capsys, monkeypatch):
    """A mistyped --out (no such folder, or a folder) is refused before the fit, evaluation or
    backtest runs, so minutes of work are not lost at the final write."""
    from stressflow.inference.present import cli

    def no_work(args):
        raise AssertionError("the command ran although its --out cannot be written")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        action.set_defaults(func=no_work)
    for out, problem in ((tmp_path / "missing" / "x.out", "does not exist"),
                         (tmp_path, "is a folder; give a file name")):
        assert cli.main([*command, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"stressflow {command[0]}: cannot write --out {out}: " in err and problem in err


def test_episode_table_is_written_whole(fitted, tmp_path):
    import pandas as pd

    out = tmp_path / "episodes.csv"
    assert main(["episodes", str(fitted), "--n-draws", "20", "--paths-per-draw", "2",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert len(table) > 0 and "p_compulsion" in table.columns
    assert [p.name for p in tmp_path.iterdir()] == ["episodes.csv"]  # no temporary file left


def test_tables_are_written_atomically_through_links_and_compressed_by_name(tmp_path,
                                                                            monkeypatch):
    """A writer that fails midway leaves the old file (a plain ``to_csv`` left the part it had
    written); ``.gz`` compresses; a link is written through; ``~`` is the home folder."""
    import gzip

    import pandas as pd
    from stressflow.inference.present.console import output_problem, write_table

    table = pd.DataFrame({"p_compulsion": [0.25, 0.75]})
    out = tmp_path / "t.csv"
    out.write_text("old")

    def fails_midway(self, path, **kwargs):
        pathlib.Path(path).write_text("p_compulsion\n0.2")
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(pd.DataFrame, "to_csv", fails_midway)
        with pytest.raises(OSError, match="disk full"):
            write_table(table, out)
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    write_table(table, tmp_path / "t.csv.gz")
    assert gzip.open(tmp_path / "t.csv.gz").read().startswith(b",p_compulsion")
    (tmp_path / "real").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "real" / "target.csv")
    write_table(table, tmp_path / "link.csv")
    assert (tmp_path / "link.csv").is_symlink()
    assert pd.read_csv(tmp_path / "real" / "target.csv", index_col=0).equals(table)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert output_problem("~/home.csv") is None
    write_table(table, "~/home.csv")
    assert (tmp_path / "home.csv").is_file()


def test_summary_refuses_a_file_that_is_not_a_fit(tmp_path, capsys):
    bad = tmp_path / "bad.nc"
    bad.write_text("not a netcdf file")
    assert main(["summary", str(bad)]) == 1
    assert "summary" in capsys.readouterr().err


def test_model_options_build_the_spec():
    from stressflow.inference.present.cli import build_parser
    from stressflow.inference.present.model_options import spec_from_args
    from stressflow.models.spec import ModelSpec

    parse = build_parser().parse_args
    assert spec_from_args(parse(["fit", "--dataset", "sp500"])) == ModelSpec()
    base = spec_from_args(parse(["fit", "--dataset", "sp500", "--model", "base"]))
    assert base == ModelSpec.base()
    spelled = spec_from_args(parse(["fit", "--dataset", "sp500", "--observables", "none",
                                    "--stage-durations", "none", "--discretionary", "off",
                                    "--compulsion-feature", "none", "--transitions", "full"]))
    assert spelled == ModelSpec.base()
    four = spec_from_args(parse(["fit", "--dataset", "sp500", "--discretionary", "off"]))
    assert four.n_stages == 4 and four.stage_durations == (250.0, 250.0, 20.0, 7.0)
    tv = spec_from_args(parse(["fit", "--dataset", "sp500", "--transition-covariates",
                               "vix,low_vol", "--stage-durations", "100,100,10,5,30"]))
    assert tv.transition_model == "ladder" and tv.transition_covariates == ("vix", "low_vol")
    assert tv.stage_durations == (100.0, 100.0, 10.0, 5.0, 30.0)
    with pytest.raises(ValueError, match="stage-durations"):
        spec_from_args(parse(["fit", "--dataset", "sp500", "--stage-durations", "long"]))
    assert main(["fit", "--dataset", "sp500", "--transition-model", "logit"]) == 2


def test_warmup_compiles_the_model_the_main_command_loads(capsys):
    """``stressflow warmup`` (run by .ci/setup) leaves on disk the compiled log density under
    the key the README's main command looks up (the default model, the features of the
    bundled S&P 500), so that command's first run on a machine loads it instead of compiling."""
    from stressflow.data import prepare
    from stressflow.inference.fitting import compile_cache
    from stressflow.inference.fitting.sampling import clear_compile_cache
    from stressflow.models.spec import ModelSpec

    spec = ModelSpec()
    columns = prepare("sp500", start="1990-01-01", end="2018-12-31",
                      observables=spec.observables).features.columns
    key = compile_cache.disk_key(json.dumps([spec.to_dict(), [str(c) for c in columns]]))
    layout = compile_cache._layout_path(key)
    layout.unlink(missing_ok=True)
    clear_compile_cache()  # no compiled density of this process stands in for the disk cache
    assert main(["warmup"]) == 0
    assert "stressflow warmup: compiled in" in capsys.readouterr().out
    assert layout.is_file()


def test_warmup_refuses_options_that_describe_no_model(capsys):
    assert main(["warmup", "--stage-durations", "many"]) == 2
    assert "stressflow warmup: --stage-durations must be numbers" in capsys.readouterr().err


def test_stationary_shares_of_a_real_fit_match_matrix_powers_and_are_in_the_summary(fitted):
    from stressflow.inference import stationary_shares, summary

    res = load_fit(fitted)
    table = stationary_shares(res)
    trans = res["posterior"]["P"].values.reshape(-1, *res["posterior"]["P"].shape[-2:])
    limit = np.array([np.linalg.matrix_power(p, 50_000)[0] for p in trans])
    np.testing.assert_allclose(table["mean"].to_numpy(), limit.mean(axis=0), atol=1e-8)
    assert list(table.index) == [str(s) for s in res["posterior"][dims.STAGE_TO].values]
    assert (table["q05"] <= table["mean"]).all() and (table["mean"] <= table["q95"]).all()
    text = summary(res)
    assert "stationary (pi P = pi, posterior mean)" in text


def test_many_fit_commands_take_the_column_options(tmp_path, capsys):
    """``backtest`` and ``fit-many`` read other column names with ``--date-column`` /
    ``--columns`` like ``fit`` and ``update``: without them the reader's advice is in
    command-line terms, and a malformed mapping is refused before any work."""
    from stressflow.data import load_dataset

    german = load_dataset("sp500").loc["2009"].reset_index().rename(columns={
        "date": "Datum", "high": "Hoch", "low": "Tief", "close": "Schluss", "volume": "Umsatz"})
    german.to_csv(tmp_path / "de.csv", index=False)
    run = ["backtest", str(tmp_path / "de.csv"), "--start", "2009-06-01", "--end", "2009-06-30",
           "--refit-every", "20", "--out", str(tmp_path / "bt.csv")]
    assert main(run) == 1
    err = capsys.readouterr().err
    assert "(pass --date-column or --columns)" in err and "date_column=" not in err
    assert main([*run, "--date-column", "Datum"]) == 1  # the date is found, the prices are not
    assert "missing required column(s) ['high', 'low', 'close', 'volume']" in (
        capsys.readouterr().err)
    assert main(["fit-many", str(tmp_path / "de.csv"), "--columns", "Hoch",
                 "--out-dir", str(tmp_path / "many")]) == 1
    assert "--columns entry 'Hoch' is not FROM=TO" in capsys.readouterr().err
    assert not (tmp_path / "many").exists() and not (tmp_path / "bt.csv").exists()
