"""Compile a model's nutpie callbacks in a helper process and write them to the persistent cache.

Run by :func:`stressflow.inference.fitting.compile_cache.compile_model` on a cache miss as
``python -m stressflow.inference.fitting.compile_helper KEY``, with the cloudpickled
``pymc.Model`` on standard input; exits 0 once the cache entry for ``KEY`` is written.

Why a separate process: numba code compiled in a process and the same code loaded from numba's
disk cache can differ in the last bits of floating-point results (measured: a fit's draws
differed between the first process on a machine and every later one, with nutpie's own compile
as well as with the cache). Compiling in a helper and loading the entry in the fitting process
makes every process, the first included, run the machine code loaded from disk, so the same seed
gives the same draws whatever the state of the cache.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Compile the model read from stdin under the key ``argv[0]``; 0 on success."""
    import cloudpickle
    from stressflow.inference.fitting import compile_cache

    (key,) = sys.argv[1:] if argv is None else argv
    model = cloudpickle.loads(sys.stdin.buffer.read())
    compile_cache.compile_here(model, key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
