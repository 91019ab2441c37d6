"""The samplers behind :func:`stressflow.inference.fitting.fit.fit`: nutpie (default) or PyMC.

Both start every chain from one data-driven point (:mod:`stressflow.inference.fitting.initialize`)
plus a small seeded jitter. nutpie compiles the log density with numba; a compiled density is
kept per process and key (the model options and feature names) and reused for new data with
``with_data``, which skips the compile, and its machine code is kept on disk for the next
process (:mod:`stressflow.inference.fitting.compile_cache`).
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
from stressflow.inference.fitting.compile_cache import compile_model

__all__ = ["SAMPLERS", "ADAPTATIONS", "clear_compile_cache", "sample_nutpie", "sample_pymc"]

SAMPLERS = ("nutpie", "pymc")
#: nutpie mass-matrix adaptations offered by :func:`stressflow.inference.fitting.fit.fit`.
ADAPTATIONS = ("low_rank", "diag")
_JITTER_SD = 0.05

#: Compiled nutpie log densities of this process, keyed by what changes the graph (the model
#: options and the feature names); a later fit with the same key swaps in its data with
#: ``with_data`` instead of compiling again (the data are shared variables of any length).
_NUTPIE_CACHE: dict[str, tuple] = {}


def clear_compile_cache() -> None:
    """Forget the compiled log densities kept for reuse (see ``fit``'s ``timings``)."""
    _NUTPIE_CACHE.clear()


def _nutpie_compiled(model, start, cache_key):
    """``(compiled, model_it_was_built_from, source)`` for ``model``'s data; ``source`` is
    ``"memory"`` (this process compiled the same graph before), or the
    :class:`~stressflow.inference.fitting.compile_cache.CompileResult` source (``"disk"``,
    ``"compiled"``, ``"nutpie"``)."""
    hit = _NUTPIE_CACHE.get(cache_key) if cache_key is not None else None
    if hit is None:
        result = compile_model(model, cache_key, start)
        if cache_key is not None:
            _NUTPIE_CACHE[cache_key] = (model, result.compiled)
        return result.compiled, model, result.source
    base_model, compiled = hit
    data = {var.name: var.get_value() for var in model.data_vars}
    return compiled.with_data(**data), base_model, "memory"


def _one_blas_thread():
    """BLAS limited to one thread while chains sample (restored afterwards).

    The emission term is a ``(T, 3D) x (3D, K)`` matrix product; above a size threshold
    OpenBLAS runs it on all cores, and with one sampler thread per chain already on every core
    the threads oversubscribe them (the README, Performance, gives the measurement). One BLAS
    thread per chain avoids that.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _cores(chains: int, cores: int | None) -> int:
    """Chains run at once: ``cores`` if given, else one per chain up to the CPU count."""
    return min(chains, os.cpu_count() or 1) if cores is None else min(chains, cores)


def sample_nutpie(model, start, *, chains, draws, tune, seed, progress_bar, target_accept,
                   cache_key=None, adaptation="low_rank", cores=None):
    import nutpie
    from pymc.initial_point import make_initial_point_fn

    compiled, base_model, source = _nutpie_compiled(model, start, cache_key)
    # the start in nutpie's flat unconstrained order, from this fit's start values
    point_fn = make_initial_point_fn(model=base_model, overrides=start, jitter_rvs=set(),
                                     return_transformed=True)
    # nutpie's flat vector: the free variables' unconstrained values in model.free_RVs order
    names = [base_model.rvs_to_values[rv].name for rv in base_model.free_RVs]

    def base_point(chain_seed):
        point = point_fn(chain_seed)
        return np.concatenate([np.ravel(point[name]) for name in names])

    def jittered_point(chain_seed):
        x = np.asarray(base_point(chain_seed), dtype=np.float64)
        rng = np.random.default_rng([seed, int(chain_seed) % (2**63)])
        return x + rng.normal(0.0, _JITTER_SD, size=x.shape)

    compiled = dataclasses.replace(compiled, initial_point_func=jittered_point)
    t0 = time.perf_counter()
    with _one_blas_thread():
        trace = nutpie.sample(
            compiled,
            draws=draws,
            tune=tune,
            chains=chains,
            cores=_cores(chains, cores),
            seed=seed,
            progress_bar=progress_bar,
            save_warmup=False,
            target_accept=target_accept,
            adaptation=adaptation,
        )
    return trace, time.perf_counter() - t0, source


def sample_pymc(model, start, *, chains, draws, tune, seed, progress_bar, target_accept,
                 cache_key=None, adaptation=None, cores=None):
    import pymc as pm

    rng = np.random.default_rng(seed)
    initvals = []
    for _ in range(chains):
        initvals.append({k: np.asarray(v) for k, v in start.items()})
    t0 = time.perf_counter()
    with model:
        trace = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=_cores(chains, cores),
            random_seed=rng,
            progress_bar=progress_bar,
            initvals=initvals,
            init="adapt_diag",
            target_accept=target_accept,
            compute_convergence_checks=False,
        )
    return trace, time.perf_counter() - t0, "pymc"


