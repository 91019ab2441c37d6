"""nutpie's compiled log density, persisted on disk so a new process does not compile it again.

nutpie (``compile_pymc_model(backend="numba")``) turns a PyMC model into two C callbacks, the
log density with its gradient and the "expand" function that computes the deterministics of a
draw. In a fresh process that costs three things: PyTensor's graph rewrites, numba's compile of
the rewritten graph (PyTensor caches this on disk itself) and numba's compile of nutpie's two C
callbacks. nutpie's callbacks cannot be cached, because they hold the model's data arrays as
globals, so every process paid the last step (most of the compile: ``bench/results/
compile.md``) again.

This module builds the same two callbacks without data globals: the data arrays are read at
run time through the pointers, sizes and shapes of nutpie's ``user_data`` record (the record
that ``CompiledPyMCModel.with_data`` rewrites), so the callbacks do not depend on the data and
numba caches their machine code on disk, in PyTensor's numba cache folder, under a key (below).
A second process with the same key loads them and skips the rewrites and both compiles: it
needs only the model object (built anyway) and a small JSON file of the flat parameter layout
written beside the cache.

The key (:func:`disk_key`) is a SHA-256 of everything the compiled code depends on: the model
options and feature names (which fix the graph; the data are shared variables of any length),
the source of every module of ``stressflow.models``, of this module and of
:mod:`~stressflow.inference.fitting.compile_template`, the versions of Python,
NumPy, PyMC, PyTensor, numba, llvmlite and nutpie, the PyTensor settings that change the
generated code, and whether the kernels call glibc's vector ``exp``
(:func:`stressflow.models.numerics.vecmath.vector_flag`). Any change gives a new key, so stale
code is never loaded; old entries are left for the user to delete (``pytensor.config
.base_compiledir``). Set ``STRESSFLOW_COMPILE_CACHE=0`` to compile in every process.

On a miss the callbacks are compiled in a helper process
(:mod:`stressflow.inference.fitting.compile_helper`) and then loaded from the cache like in any
later process: numba code compiled in-process and the same code loaded from its cache can differ
in the last bits, and a fit's draws with them, so this way the first fit on a machine gives the
same draws as every later one. The helper costs a Python start-up (a few seconds) on top of the
compile, once per key.

Where this module cannot build the callbacks (a nutpie version whose internals differ, a model
with a 0-dimensional data container), :func:`compile_model` falls back to nutpie's own compile
and says so in its result.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from stressflow.inference.fitting import compile_template

__all__ = ["CompileResult", "cache_dir", "compile_model", "disk_key", "enabled"]

#: Version of the generated callback source (compile_template); part of the key.
_TEMPLATE_VERSION = 1
_ENV = "STRESSFLOW_COMPILE_CACHE"
#: The helper process's module (run by name: it imports this module, not the other way round).
_HELPER = "stressflow.inference.fitting.compile_helper"


@dataclass(frozen=True)
class CompileResult:
    """A compiled nutpie model and where it came from.

    ``source`` is ``"disk"`` (callbacks loaded from the persistent cache), ``"compiled"``
    (not in the cache: compiled in a helper process, written to the cache and loaded from it;
    if the helper failed, compiled in this process, and ``note`` says so) or ``"nutpie"``
    (nutpie's own compile: the cache is disabled or could not be used; ``note`` says why).
    """

    compiled: object
    source: str
    key: str | None
    note: str = ""


def enabled() -> bool:
    """Whether the persistent cache is used (``STRESSFLOW_COMPILE_CACHE`` is not ``0`` and
    PyTensor's numba cache is on)."""
    import pytensor

    return os.environ.get(_ENV, "1") != "0" and bool(pytensor.config.numba__cache)


def cache_dir() -> Path:
    """Folder of the layout files (``<key>.json``); the callbacks' machine code goes to
    PyTensor's numba cache folder beside it."""
    import pytensor

    return Path(pytensor.config.base_compiledir) / "stressflow"


def _sources_digest() -> str:
    import stressflow.models

    digest = hashlib.sha256()
    root = Path(stressflow.models.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    digest.update(Path(compile_template.__file__).read_bytes())
    return digest.hexdigest()


def disk_key(model_key: str) -> str:
    """The persistent cache key of a model whose graph is fixed by ``model_key`` (the JSON of
    the model options and feature names that :func:`stressflow.inference.fitting.fit.fit`
    builds); see the module docstring for what else enters it."""
    import llvmlite
    import numba
    import nutpie
    import pymc
    import pytensor
    from stressflow.models.numerics.vecmath import vector_flag

    cfg = pytensor.config
    parts = {
        "model": model_key,
        "sources": _sources_digest(),
        "template": _TEMPLATE_VERSION,
        "versions": [sys.version, np.__version__, pymc.__version__, pytensor.__version__,
                     numba.__version__, llvmlite.__version__, nutpie.__version__],
        "pytensor": [str(cfg.floatX), bool(cfg.numba__fastmath), str(cfg.mode)],
        "vector_exp": len(vector_flag()),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]


# ------------------------------------------------------------------------------------------
# The two C callbacks, generated as source (compile_template) with the layout as literals
# ------------------------------------------------------------------------------------------

def _void_pointer():
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def as_void_pointer(typingctx, src):
        """A void pointer from an integer address."""
        def codegen(context, builder, sig, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return types.voidptr(src), codegen

    return as_void_pointer


class _NotCompiledHere:
    """Stands for the PyTensor function when the callbacks are expected from the cache: if numba
    had to compile instead, typing this object fails (never a silently different function)."""


def _callback(kind: str, inner, key: str, layout: dict):
    """The C callback ``kind`` for the layout, loaded from numba's cache under ``key`` when
    present, else compiled (calling ``inner``) and saved there."""
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    arrays = [(layout["words"][i][0], layout["words"][i][1], layout["dtypes"][i])
              for i in layout["reads"][kind]]
    src = compile_template.callback_source(kind, layout["n_dim"], layout["n_expanded"],
                                           layout["n_words"], arrays)
    name = f"stressflow_{kind}"
    func = compile_numba_function_src(
        src, name,
        # __name__: numba rebuilds a cached function's environment from its module's name
        global_env={"__name__": __name__, "numba": numba, "np": np, "inner": inner,
                    "as_void_pointer": _void_pointer()},
        cache_key=f"stressflow_{kind}_{key}_{hashlib.sha256(src.encode()).hexdigest()[:16]}",
    )
    if kind == "logp":
        sig = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                                numba.types.CPointer(numba.types.double),
                                numba.types.CPointer(numba.types.double), numba.types.voidptr)
    else:
        sig = numba.types.int64(numba.types.uint64, numba.types.uint64,
                                numba.types.CPointer(numba.types.double),
                                numba.types.CPointer(numba.types.double), numba.types.voidptr)
    return numba.cfunc(sig, cache=True)(func)


# ------------------------------------------------------------------------------------------
# Building the nutpie model
# ------------------------------------------------------------------------------------------

def _shared_data(shared_vars):
    keys = {var: f"s{i}" for i, var in enumerate(shared_vars)}
    data = {}
    for var, key in keys.items():
        value = np.array(var.get_value(), order="C", copy=True)
        value.flags.writeable = False
        data[key] = value
    return keys, data


def _assemble(model, layout, logp_cb, expand_cb, shared_vars):
    from nutpie.compile_pymc import (
        CompiledPyMCModel,
        _prepare_dims_and_coords,
        make_user_data,
    )

    keys, data = _shared_data(shared_vars)
    shape_info = (layout["names"], [slice(a, b) for a, b in layout["slices"]],
                  [tuple(s) for s in layout["shapes"]])
    dims, coords = _prepare_dims_and_coords(model, shape_info, layout["reparameterized"])

    def no_initial_point(seed):
        raise RuntimeError("the start point is set by stressflow's sample_nutpie")

    return CompiledPyMCModel(
        _n_dim=layout["n_dim"], dims=dims, _coords=coords,
        _shapes={n: tuple(s) for n, s in zip(shape_info[0], shape_info[2], strict=True)},
        compiled_logp_func=logp_cb, compiled_expand_func=expand_cb,
        initial_point_func=no_initial_point, shared_data=data, shared_var_keys=keys,
        user_data=make_user_data(keys, data), n_expanded=layout["n_expanded"],
        shape_info=shape_info, logp_func=None, expand_func=None,
    )


def _model_shared(model, names: list[str]):
    """The model's data containers named ``names``, in that order (KeyError if one is not)."""
    by_name = {var.name: var for var in model.data_vars}
    return [by_name[name] for name in names]


def _layout_path(key: str) -> Path:
    return cache_dir() / f"{key}.json"


def _write_layout(key: str, layout: dict) -> None:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(layout, handle)
        os.replace(tmp, _layout_path(key))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(model, key: str):
    """The model from the disk cache, or None where there is no usable entry."""
    path = _layout_path(key)
    if not path.exists():
        return None
    try:
        layout = json.loads(path.read_text())
        shared_vars = _model_shared(model, layout["shared"])
        free = [model.rvs_to_values[rv].name for rv in model.free_RVs]
        if free != layout["names"][: len(free)] or any(
                var.type.ndim != len(words[1]) for var, words in zip(
                    shared_vars, layout["words"], strict=True)):
            return None
        from stressflow.models.numerics.vecmath import load_vector_math

        load_vector_math()  # cached code may call libmvec: load it before linking the code
        logp_cb = _callback("logp", _NotCompiledHere(), key, layout)
        expand_cb = _callback("expand", _NotCompiledHere(), key, layout)
    except Exception:
        # a damaged layout file, a data container the layout does not name, or callbacks that
        # numba had to compile instead of loading (typing _NotCompiledHere fails): compile
        return None
    if logp_cb.cache_hits != 1 or expand_cb.cache_hits != 1:
        return None
    return _assemble(model, layout, logp_cb, expand_cb, shared_vars)


def compile_here(model, key: str):
    """Compile the callbacks in this process (nutpie's graph functions), save them to the
    cache under ``key`` (a :func:`disk_key`) and return the model."""
    from nutpie.compile_pymc import _make_functions, make_user_data
    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)
    n_dim, n_expanded, logp_pt, expand_pt, _, shape_info, reparameterized = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True,
        pymc_initial_point_fn=point_fn)
    # one user_data record holds every data container either function reads (nutpie's
    # with_data rewrites it); each callback reads its own containers from it, in its order
    per_kind = {"logp": list(logp_pt.get_shared()), "expand": list(expand_pt.get_shared())}
    shared_vars = list(dict.fromkeys(per_kind["logp"] + per_kind["expand"]))
    if any(var.type.ndim == 0 or var not in model.data_vars for var in shared_vars):
        raise TypeError("the model has a data container the cached callbacks cannot read")
    keys, data = _shared_data(shared_vars)
    n_words, words = compile_template.record_words(make_user_data(keys, data),
                                                   list(keys.values()))
    position = {var: i for i, var in enumerate(shared_vars)}
    layout = {
        "n_dim": int(n_dim), "n_expanded": int(n_expanded), "n_words": n_words,
        "shared": [var.name for var in shared_vars],
        "words": [[int(d), [int(w) for w in s]] for d, s in words],
        "dtypes": [np.dtype(var.type.dtype).name for var in shared_vars],
        "reads": {kind: [position[var] for var in vs] for kind, vs in per_kind.items()},
        "names": list(shape_info[0]),
        "slices": [[int(s.start), int(s.stop)] for s in shape_info[1]],
        "shapes": [list(map(int, s)) for s in shape_info[2]],
        "reparameterized": list(reparameterized),
    }
    logp_cb = _callback("logp", logp_pt.vm.jit_fn, key, layout)
    expand_cb = _callback("expand", expand_pt.vm.jit_fn, key, layout)
    _write_layout(key, layout)
    return _assemble(model, layout, logp_cb, expand_cb, _model_shared(model, layout["shared"]))


def _compile_elsewhere(model, key: str) -> str:
    """Compile ``model`` under the cache key ``key`` in a helper process; "" once its entry is
    written, else why not (the caller then compiles in its own process)."""
    import subprocess

    import cloudpickle

    try:
        payload = cloudpickle.dumps(model)
    except Exception as exc:  # a model cloudpickle cannot serialise
        return f"the model could not be pickled: {type(exc).__name__}"
    proc = subprocess.run([sys.executable, "-m", _HELPER, key], input=payload,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        last = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        return f"the helper process failed: {last[0]}"
    return ""


def compile_model(model, model_key: str | None, start=None) -> CompileResult:
    """nutpie's compiled model of ``model``, from the persistent cache where possible.

    Parameters
    ----------
    model : pymc.Model
    model_key : str, optional
        What fixes the model's graph (see :func:`disk_key`); None compiles with nutpie's own
        compile, uncached.
    start : dict, optional
        Initial values for nutpie's own compile (the cached path leaves the start point to the
        caller, as :func:`stressflow.inference.fitting.sampling.sample_nutpie` sets it).
    """
    import nutpie

    note = ""
    if model_key is not None and enabled():
        key = disk_key(model_key)
        loaded = _load(model, key)
        if loaded is not None:
            return CompileResult(loaded, "disk", key)
        # compiled in a helper process, then loaded: every process, this one included, runs
        # the machine code loaded from disk, so same-seed draws do not depend on the cache state
        helper_note = _compile_elsewhere(model, key)
        loaded = _load(model, key) if not helper_note else None
        if loaded is not None:
            return CompileResult(loaded, "compiled", key)
        helper_note = helper_note or "the helper's entry did not load"
        try:
            compiled = compile_here(model, key)
            return CompileResult(_load(model, key) or compiled, "compiled", key,
                                 f"compiled in this process ({helper_note}): its draws may "
                                 "differ in the last bits from a process that loads the cache")
        except (ImportError, AttributeError, TypeError, KeyError) as exc:
            note = f"persistent compile cache not used: {type(exc).__name__}: {exc}"
    else:
        key = None
        note = "persistent compile cache disabled"
    compiled = nutpie.compile_pymc_model(model, initial_points=start, jitter_rvs=set())
    return CompileResult(compiled, "nutpie", key, note)
