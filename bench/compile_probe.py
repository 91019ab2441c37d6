"""Probe of the compile cost and of same-seed reproducibility across processes.

Fits the default model to the S&P 500 2010-2014 (1,258 days; 2 chains x 30 + 20, seed 3) and
prints a hash of the EM start, of the draws and of the smoothed probabilities, with the fit's
timings. Run it several times against the same, initially empty, caches to see a fresh machine
and then later processes (``bench/results/compile.md`` has the figures)::

    mkdir -p /tmp/cd /tmp/nb
    export PYTENSOR_FLAGS=base_compiledir=/tmp/cd NUMBA_CACHE_DIR=/tmp/nb
    .venv/bin/python bench/compile_probe.py; .venv/bin/python bench/compile_probe.py

``STRESSFLOW_COMPILE_CACHE=0`` measures nutpie's own compile instead.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np


def digest(arrays) -> str:
    """First 12 hex digits of the SHA-256 of the arrays' bytes."""
    raw = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    return hashlib.sha256(raw).hexdigest()[:12]


def main() -> None:
    from stressflow.data import prepare
    from stressflow.inference.fitting.fit import fit
    from stressflow.inference.fitting.initialize import em_start
    from stressflow.models.spec import ModelSpec

    warnings.simplefilter("ignore")
    spec = ModelSpec()
    prepared = prepare("sp500", start="2010-01-01", end="2014-12-31",
                       observables=spec.observables)
    start = em_start(prepared.features, spec, 0)
    print("em start", digest([start[k] for k in sorted(start)]))
    result = fit(prepared, spec=spec, chains=2, draws=20, tune=30, seed=3)
    draws = [result["posterior"][v].values for v in ("mu", "sigma", "P")]
    print("draws", digest(draws), json.loads(result.attrs["timings"]))
    print("smoothed", digest([result["stages"]["smoothed"].values]))


if __name__ == "__main__":
    main()
