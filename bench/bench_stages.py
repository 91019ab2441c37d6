"""Cost of the five-stage default model against the four-stage model before it.

One log-density + gradient evaluation of the whole PyMC model (compiled with PyTensor's numba
backend, as nutpie samples it) on the bundled S&P 500 1990-2018 at the model's initial point,
for ``ModelSpec.base()``, the default, the previous default (without ``bond_vol_surprise``,
sequential transitions) and the default with four stages; and the sampling time
of 4 chains x (2,000 tuning + 300 draws) on 2 cores with BLAS limited to one thread (as
``fit`` does) and without the limit. Writes ``bench/results/stages.md``.

Usage (from the repository root)::

    .venv/bin/python bench/bench_stages.py
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "stages.md"
REPEAT = 300


def _models():
    from stressflow.models.spec import ModelSpec

    return {
        "base (4 stages, ordered on volatility)": ModelSpec.base(),
        "default (5 stages, break-identified)": ModelSpec(),
        "previous default (no bond_vol_surprise, sequential)": ModelSpec(
            observables=("vol_surprise",), transitions="sequential"),
        "default with 4 stages": ModelSpec(discretionary_stage=False,
                                           stage_durations=(250.0, 250.0, 20.0, 7.0)),
    }


def _prepared(spec):
    from stressflow.data import prepare

    return prepare("sp500", start="1990-01-01", end="2018-12-31", observables=spec.observables)


def evaluation_ms(spec) -> float:
    import pytensor
    from stressflow.models.pymc_model import build_model

    model = build_model(_prepared(spec).features, spec)
    fn = pytensor.function(model.value_vars, [model.logp(), model.dlogp()], mode="NUMBA")
    point = model.initial_point()
    args = [point[v.name] for v in model.value_vars]
    fn(*args)
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(REPEAT):
            fn(*args)
        best = min(best, (time.perf_counter() - t0) / REPEAT * 1e3)
    return best


def sampling_s(spec, one_blas_thread: bool) -> float:
    """Sampling time of ``fit``'s own nutpie call (EM start, seeded jitter), with or without
    its one-BLAS-thread limit."""
    import contextlib

    from stressflow.inference.fitting import sampling
    from stressflow.inference.fitting.initialize import em_start
    from stressflow.models.pymc_model import build_model

    features = _prepared(spec).features
    start = em_start(features, spec, 0)
    model = build_model(features, spec)
    limit = sampling._one_blas_thread
    if not one_blas_thread:
        sampling._one_blas_thread = contextlib.nullcontext
    try:
        _, seconds, _ = sampling.sample_nutpie(
            model, start, chains=4, draws=300, tune=2000, seed=0, progress_bar=False,
            target_accept=0.8, cores=2)
    finally:
        sampling._one_blas_thread = limit
    return seconds


def main() -> None:
    warnings.simplefilter("ignore")
    rows = []
    for name, spec in _models().items():
        rows.append((name, evaluation_ms(spec)))
        print(rows[-1], flush=True)
    default = _models()["default (5 stages, break-identified)"]
    base = _models()["base (4 stages, ordered on volatility)"]
    previous = _models()["previous default (no bond_vol_surprise, sequential)"]
    samp = [("base, BLAS 1 thread", sampling_s(base, True)),
            ("default, BLAS 1 thread", sampling_s(default, True)),
            ("previous default, BLAS 1 thread", sampling_s(previous, True)),
            ("default, BLAS unlimited", sampling_s(default, False))]
    print(samp, flush=True)
    lines = [
        "# Five stages against four: cost (`bench/bench_stages.py`)",
        "",
        "S&P 500 1990-2018 (7,307 days); one run on 2 cores.",
        "",
        "| model | one log density + gradient (ms, best of 3 x 300) | ratio to base |",
        "|---|---|---|",
    ]
    ref = rows[0][1]
    lines += [f"| {n} | {ms:.3f} | {ms / ref:.2f} |" for n, ms in rows]
    lines += ["", "| sampling, 4 chains x (2,000 tuning + 300 draws), 2 cores | s |", "|---|---|"]
    lines += [f"| {n} | {s:.1f} |" for n, s in samp]
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
