"""Every notebook in notebooks/ executes top to bottom without error (small draws inside).

Outputs are not written back: the committed notebooks stay output-free, and what they print is
whatever the current code computes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert "01_quickstart.ipynb" in names and "02_past_crises.ipynb" in names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    env_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell raised {exc.ename}: {exc.evalue}")
    finally:
        if env_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_backend
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    unexecuted = [i for i, cell in enumerate(code) if cell.get("execution_count") is None]
    assert code and not unexecuted, f"{path.name}: code cells {unexecuted} did not run"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_fit_in_a_notebook_is_checked_for_convergence(path):
    """Each ``name = sfi.fit(...)`` is followed by ``check_fit(name`` and a cell that reports
    when it did not converge (``.ok``), so a notebook never goes on silently after a bad fit."""
    nbformat = pytest.importorskip("nbformat")
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                       if c.cell_type == "code")
    fitted = re.findall(r"^\s*(\w+) = sfi\.fit\(", source, flags=re.MULTILINE)
    assert fitted, f"{path.name} fits nothing"
    for name in fitted:
        after = source[source.index(f"{name} = sfi.fit("):]
        assert f"check_fit({name}" in after, f"{path.name}: fit {name!r} is never checked"
    if path.name == "03_risk_feed.ipynb":
        assert source.count("NOT CONVERGED") >= 2 and ".ok" in source
