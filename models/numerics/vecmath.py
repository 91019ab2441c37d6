"""Vectorised ``exp`` for the compiled kernels: glibc's libmvec, called through LLVM.

numba compiles ``np.exp`` to one scalar libm call per element: on the fast forward pass that is
about 45% of the time (T x K calls of ~4 ns). glibc ships vector versions of its maths functions
(libmvec, x86_64 Linux, glibc >= 2.22); :func:`exp_inplace` calls its AVX2 variant
``_ZGVdN4v_exp`` on four doubles at a time (documented maximum error 4 ulp), and falls back to
the scalar ``llvm.exp`` loop where libmvec, AVX2/FMA, or a host-CPU numba target is missing.

:func:`exp_inplace` takes a flag, :func:`vector_flag`, whose *type* says whether the compiled
code may call libmvec: ``(0,)`` once the library is loaded into this process, ``()`` otherwise.
The choice is therefore part of every compiled signature, so numba's cache never hands code
that calls ``_ZGVdN4v_exp`` to a process that has not loaded it (the JIT resolves the symbol
from the loaded libraries; an unresolved one would abort). Nothing happens at import.

numba caches each compiled kernel by the timestamp of its own source file only, not of the
modules it calls: after editing this module (or ``steps.py``, ``fast.py``, ``logspace.py``),
clear ``models/numerics/__pycache__`` so that every kernel is recompiled.
"""

from __future__ import annotations

import ctypes.util
import platform
import sys

from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

__all__ = ["exp_inplace", "load_vector_math", "vector_flag"]

_VECTOR_EXP = "_ZGVdN4v_exp"  # x86_64 vector ABI: AVX2 ("d"), unmasked, 4 lanes, 1 vector arg
_WIDTH = 4
_state: dict[str, bool] = {}


def load_vector_math() -> bool:
    """Load libmvec into the process if this machine can use its AVX2 ``exp``; True if so.

    Idempotent. False (the scalar fallback) off x86_64 Linux, without AVX2 and FMA, when
    numba targets another CPU than the host (``NUMBA_CPU_NAME``), or if libmvec is absent.
    """
    if "ok" not in _state:
        _state["ok"] = _try_load()
    return _state["ok"]


def vector_flag() -> tuple:
    """``(0,)`` if libmvec is loaded and usable here (see :func:`load_vector_math`), else ``()``.

    Pass it to compiled code that calls :func:`exp_inplace`: its type selects the code path.
    """
    return (0,) if load_vector_math() else ()


def _try_load() -> bool:
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return False
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return False
    features = llvm.get_host_cpu_features()
    if not (features.get("avx2") and features.get("fma")):
        return False
    for name in ("libmvec.so.1", ctypes.util.find_library("mvec")):
        if not name:
            continue
        try:
            llvm.load_library_permanently(name)
        except RuntimeError:
            continue
        return llvm.address_of_symbol(_VECTOR_EXP) is not None
    return False


@intrinsic
def exp_inplace(typingctx, arr, vec):
    """``arr[...] = exp(arr)`` for a C-contiguous float64 array (compiled code only).

    ``vec`` is :func:`vector_flag`: a 1-tuple compiles the libmvec loop (four doubles per
    call, then a scalar tail), an empty tuple the scalar ``llvm.exp`` loop.
    """
    if not (isinstance(arr, types.Array) and arr.dtype == types.float64 and arr.layout == "C"
            and isinstance(vec, types.BaseTuple) and len(vec) in (0, 1)):
        return None
    vectorised = len(vec) == 1

    def codegen(context, builder, signature, args):
        ary = context.make_array(arr)(context, builder, args[0])
        n = ary.nitems
        data = ary.data
        double = ir.DoubleType()
        start = ir.Constant(n.type, 0)
        if vectorised:
            vtype = ir.VectorType(double, _WIDTH)
            vexp = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vtype, [vtype]), _VECTOR_EXP
            )
            n_vec = builder.udiv(n, ir.Constant(n.type, _WIDTH))
            with cgutils.for_range(builder, n_vec) as loop:
                ptr = builder.gep(data, [builder.mul(loop.index, ir.Constant(n.type, _WIDTH))])
                vptr = builder.bitcast(ptr, vtype.as_pointer())
                builder.store(builder.call(vexp, [builder.load(vptr, align=8)]), vptr, align=8)
            start = builder.mul(n_vec, ir.Constant(n.type, _WIDTH))
        sexp = builder.module.declare_intrinsic("llvm.exp", [double])
        with cgutils.for_range_slice(builder, start, n, ir.Constant(n.type, 1)) as (idx, _):
            ptr = builder.gep(data, [idx])
            builder.store(builder.call(sexp, [builder.load(ptr)]), ptr)
        return context.get_dummy_value()

    return types.void(arr, vec), codegen
