"""The persistent compile cache: a second process loads nutpie's callbacks instead of compiling,
and what it loads computes exactly what was compiled."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from numpy.testing import assert_array_equal
from stressflow.inference.fitting import compile_cache
from stressflow.models.spec import ModelSpec

BASE = ModelSpec.base()

# Builds the small simulated model, compiles it under KEY (argv[1]) and prints the source, the
# log density and gradient at fixed points, the expand output and 20 draws of one chain.
_PROBE = r"""
import ctypes, dataclasses, json, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[2])
import numpy as np, nutpie
from conftest import simulate_stage_hmm
from stressflow.inference.fitting.compile_cache import compile_model
from stressflow.models.pymc_model import build_model
from stressflow.models.spec import ModelSpec

features, _ = simulate_stage_hmm(300, seed=7, n_missing=4)
model = build_model(features, ModelSpec.base())
result = compile_model(model, sys.argv[1])
c = result.compiled
ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
x0 = np.linspace(-0.5, 0.5, c.n_dim)
values = []
for shift in (0.0, 0.1, -0.3):
    x = x0 + shift
    grad, logp = np.zeros(c.n_dim), np.zeros(())
    rc = c.compiled_logp_func.ctypes(c.n_dim, ptr(x), ptr(grad), ptr(logp),
                                     ctypes.c_void_p(c.user_data.ctypes.data))
    values.append([rc, float(logp), grad.tolist()])
out = np.zeros(c.n_expanded)
rc = c.compiled_expand_func.ctypes(c.n_dim, c.n_expanded, ptr(x0), ptr(out),
                                   ctypes.c_void_p(c.user_data.ctypes.data))
trace = nutpie.sample(dataclasses.replace(c, initial_point_func=lambda seed: x0.copy()),
                      draws=20, tune=20, chains=1, cores=1, seed=5, progress_bar=False)
print(json.dumps({"source": result.source, "values": values, "expand": [rc, out.tolist()],
                  "draws": trace.posterior["mu"].values.ravel().tolist()}))
"""


def _probe(key: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, key, str(REPO_ROOT / "tests")],
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def fresh_key():
    """A model key no earlier run has compiled; its cache entries are removed afterwards."""
    key = f"test-{uuid.uuid4().hex}"
    yield key
    disk = compile_cache.disk_key(key)
    compile_cache.cache_dir().joinpath(f"{disk}.json").unlink(missing_ok=True)
    from pytensor.link.numba.cache import NUMBA_CACHE_PATH

    for path in Path(NUMBA_CACHE_PATH).glob(f"*{disk}*"):
        path.unlink(missing_ok=True)


def test_second_process_loads_what_the_first_compiled(fresh_key):
    """Process 1 compiles and saves; process 2 loads from disk (no compile) and its log density,
    gradient, deterministics and draws are bit-identical to process 1's."""
    first = _probe(fresh_key)
    second = _probe(fresh_key)
    assert (first["source"], second["source"]) == ("compiled", "disk")
    for (rc1, logp1, grad1), (rc2, logp2, grad2) in zip(first["values"], second["values"],
                                                           strict=True):
        assert rc1 == rc2 == 0 and np.isfinite(logp1) and logp1 == logp2
        assert_array_equal(grad1, grad2)
    assert first["expand"][0] == second["expand"][0] == 0
    assert_array_equal(first["expand"][1], second["expand"][1])
    assert_array_equal(first["draws"], second["draws"])


def test_cached_callbacks_equal_nutpie_own(fresh_key, small_simulated):
    """The cached callbacks compute nutpie's own log density and gradient exactly, on the data
    they were compiled with and after ``with_data`` swaps in a series of another length."""
    import ctypes

    import nutpie
    from stressflow.models.pymc_model import build_model

    model = build_model(small_simulated.features, BASE)
    ours = compile_cache.compile_model(model, fresh_key)
    assert ours.source == "compiled"
    theirs = nutpie.compile_pymc_model(model, jitter_rvs=set())
    rng = np.random.default_rng(0)

    def call(c, x):
        grad, logp = np.zeros(c.n_dim), np.zeros(())

        def ptr(a):
            return a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))

        rc = c.compiled_logp_func.ctypes(c.n_dim, ptr(x), ptr(grad), ptr(logp),
                                         ctypes.c_void_p(c.user_data.ctypes.data))
        return rc, float(logp), grad

    shorter = {v.name: v.get_value()[:120] for v in model.data_vars}
    for a, b in ((ours.compiled, theirs),
                 (ours.compiled.with_data(**shorter), theirs.with_data(**shorter))):
        for _ in range(20):
            x = rng.normal(0.0, 0.7, a.n_dim)
            ra, rb = call(a, x), call(b, x)
            assert ra[0] == rb[0] == 0
            assert ra[1] == rb[1]
            assert_array_equal(ra[2], rb[2])


def test_damaged_or_missing_entries_compile_again(fresh_key, small_simulated):
    """A damaged layout file or deleted machine code is not an error: the model compiles again
    (and is saved again)."""
    from pytensor.link.numba.cache import NUMBA_CACHE_PATH
    from stressflow.models.pymc_model import build_model

    model = build_model(small_simulated.features, BASE)
    assert compile_cache.compile_model(model, fresh_key).source == "compiled"
    disk = compile_cache.disk_key(fresh_key)
    layout = compile_cache.cache_dir() / f"{disk}.json"
    layout.write_text('{"n_dim": ')
    assert compile_cache.compile_model(model, fresh_key).source == "compiled"
    assert json.loads(layout.read_text())["n_dim"] > 0
    for path in Path(NUMBA_CACHE_PATH).glob(f"*{disk}*"):
        path.unlink()
    assert compile_cache.compile_model(model, fresh_key).source == "compiled"
    assert compile_cache.compile_model(model, fresh_key).source == "disk"


def test_disabled_cache_uses_nutpie(monkeypatch, small_simulated):
    from stressflow.models.pymc_model import build_model

    monkeypatch.setenv("STRESSFLOW_COMPILE_CACHE", "0")
    assert not compile_cache.enabled()
    model = build_model(small_simulated.features, BASE)
    result = compile_cache.compile_model(model, "anything")
    assert result.source == "nutpie" and result.key is None and "disabled" in result.note


def test_key_follows_the_model_and_the_sources(monkeypatch):
    assert compile_cache.disk_key("a") == compile_cache.disk_key("a")
    assert compile_cache.disk_key("a") != compile_cache.disk_key("b")
    before = compile_cache.disk_key("a")
    monkeypatch.setattr(compile_cache, "_sources_digest", lambda: "edited kernel")
    assert compile_cache.disk_key("a") != before


def test_fit_in_a_new_process_loads_from_disk():
    """Two processes fit the same model: the second reports its compiled density as loaded from
    disk, and both give the same draws."""
    script = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
from conftest import make_prepared, simulate_stage_hmm
from stressflow.inference import fit
from stressflow.models.spec import ModelSpec
features, _ = simulate_stage_hmm(300, seed=7, n_missing=4)
res = fit(make_prepared(features), spec=ModelSpec.base(), chains=1, draws=20, tune=20, seed=2,
          pointwise_loglik=False)
print(json.dumps({"timings": json.loads(res.attrs["timings"]),
                  "mu": res.posterior["mu"].values.ravel().tolist()}))
"""
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", script, str(REPO_ROOT / "tests")],
                              capture_output=True, text=True, timeout=600, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert runs[1]["timings"]["compile_disk"] == 1.0
    assert runs[1]["timings"]["compile_cached"] == 0.0
    assert runs[0]["mu"] == runs[1]["mu"]


def test_a_failed_helper_compiles_here_and_says_so(fresh_key, small_simulated, monkeypatch):
    """Where the helper process cannot compile (here: it exits with an error), the model is
    compiled in this process, still written to the cache, and the note says so."""
    from stressflow.models.pymc_model import build_model

    monkeypatch.setattr(compile_cache.sys, "executable", "/bin/false")
    model = build_model(small_simulated.features, BASE)
    result = compile_cache.compile_model(model, fresh_key)
    assert result.source == "compiled" and "helper process failed" in result.note
    monkeypatch.undo()
    assert compile_cache.compile_model(model, fresh_key).source == "disk"
