"""Source text of the two C callbacks that :mod:`stressflow.inference.fitting.compile_cache`
compiles and caches: nutpie's C signatures for the log density with its gradient
(``stressflow_logp``) and for the deterministics of a draw (``stressflow_expand``), reading the
model's data arrays through the pointers and shapes of nutpie's ``user_data`` record rather than
holding them as globals, so that the compiled code does not depend on the data.

Pure string and layout arithmetic: no numba here. The generated source is part of the cache key
(:func:`stressflow.inference.fitting.compile_cache.disk_key` hashes this file, and every
callback's numba cache key hashes its source).
"""

from __future__ import annotations

import numpy as np


def record_words(user_data: np.ndarray, keys: list[str]) -> tuple[int, list[tuple]]:
    """``(n_words, [(data_word, shape_words), ...])``: the positions, in 64-bit words, of each
    shared array's data pointer and shape entries inside nutpie's ``user_data`` record."""
    rec = user_data.dtype
    if rec.itemsize % 8:
        raise TypeError("nutpie's user_data record is not a whole number of 64-bit words")
    shared, base = rec.fields["shared"][:2]
    data, data_off = shared.fields["data"][:2]
    shape, shape_off = shared.fields["shape"][:2]
    out = []
    for key in keys:
        d_dtype, d_off = data.fields[key][:2]
        s_dtype, s_off = shape.fields[key][:2]
        if d_dtype.itemsize != 8 or s_dtype.base.itemsize != 8:
            raise TypeError("nutpie's user_data record does not hold 64-bit pointers and sizes")
        first = (base + shape_off + s_off) // 8
        ndim = int(np.prod(s_dtype.shape)) if s_dtype.shape else 1
        out.append(((base + data_off + d_off) // 8, tuple(range(first, first + ndim))))
    return rec.itemsize // 8, out


def callback_source(kind: str, n_dim: int, n_expanded: int, n_words: int,
                     arrays: list[tuple]) -> str:
    """Source of the logp (``kind="logp"``) or expand callback, nutpie's C signatures."""
    lines = []
    if kind == "logp":
        lines.append("def stressflow_logp(dim, x_, out_, logp_, user_data_):")
        lines.append(f"    if dim != {n_dim}:")
    else:
        lines.append("def stressflow_expand(dim, expanded, x_, out_, user_data_):")
        lines.append(f"    if dim != {n_dim} or expanded != {n_expanded}:")
    lines += ["        return -1", "    try:", f"        x = numba.carray(x_, ({n_dim},))",
              f"        ud = numba.carray(user_data_, ({n_words},), np.uint64)"]
    names = []
    for i, (data_word, shape_words, dtype) in enumerate(arrays):
        shape = ", ".join(f"np.intp(ud[{w}])" for w in shape_words) + ","
        lines.append(f"        a{i} = numba.carray(as_void_pointer(ud[{data_word}]), ({shape}), "
                     f"np.{dtype})")
        names.append(f"a{i}")
    call = ", ".join(["x", *names])
    if kind == "logp":
        lines += [
            f"        out = numba.carray(out_, ({n_dim},))",
            "        logp = numba.carray(logp_, ())",
            f"        logp_val, grad = inner({call})",
            "        logp[()] = logp_val",
            "        out[...] = grad",
            "        if not np.all(np.isfinite(out)):",
            "            return 3",
            "        if not np.isfinite(logp_val):",
            "            return 4",
        ]
    else:
        lines += [
            f"        out = numba.carray(out_, ({n_expanded},))",
            f"        (values,) = inner({call})",
            "        out[...] = values",
        ]
    failed = "        return 1" if kind == "logp" else "        return -2"
    lines += ["    except Exception:", failed, "    return 0"]
    return "\n".join(lines) + "\n"
