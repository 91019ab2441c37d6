"""Independent tasks on ``dask.distributed``: the cluster, and results as each task finishes.

Shared by :mod:`stressflow.inference.apps.many` (one fit per asset or window) and
:func:`stressflow.inference.apps.backtest.backtest` (one refit per refit date). Dask does the
scheduling, data transfer, worker supervision and failure reporting; this module only

* opens a client (:func:`open_client`): a ``distributed.LocalCluster`` of single-threaded worker
  processes whose thread pools are pinned (:data:`THREAD_VARS`), or an existing cluster given
  by its scheduler address;
* submits one call per named task and yields an :class:`Outcome` per task in the order they
  finish (``distributed.as_completed``), an exception or a lost worker as an outcome with its
  error instead of an exception that would lose the other tasks (:func:`run_tasks`);
* carries the warnings a task raised back to the caller (:func:`capture_warnings`,
  :func:`replay_warnings`).

Each worker process keeps its own compiled log density (``stressflow.inference.fitting
.sampling``'s per-process cache), so a worker compiles once and every later task on it with the
same model reuses the compile.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stressflow.models.messages import require_int

__all__ = ["THREAD_VARS", "Outcome", "open_client", "run_tasks", "worker_name",
           "capture_warnings", "replay_warnings", "progress_line", "default_workers"]

#: Thread pools pinned to one thread in every worker of a :func:`open_client` local cluster
#: (BLAS/OpenMP and numba's): a worker runs one task at a time and a task's threads are the
#: sampler's chains (``fit(cores=threads_per_task)``), so nothing oversubscribes the cores.
THREAD_VARS: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                "NUMBA_NUM_THREADS")


def default_workers(threads_per_task: int = 1) -> int:
    """Workers of a default local cluster: the CPU count divided by the threads of a task."""
    return max(1, (os.cpu_count() or 1) // threads_per_task)


@contextlib.contextmanager
def open_client(workers: int | None = None, scheduler=None, *, threads_per_task: int = 1):
    """Yield a ``distributed.Client``; close what was opened here on exit.

    Parameters
    ----------
    workers : int, optional
        Worker processes of a new ``distributed.LocalCluster(n_workers=workers,
        threads_per_worker=1, processes=True)`` (default :func:`default_workers`), each with
        :data:`THREAD_VARS` set to 1 in its environment.
    scheduler : str or distributed.Client, optional
        Use an existing cluster instead: its scheduler address (``"tcp://host:8786"``) or a
        client connected to it (left open). Its workers must be able to import stressflow and,
        for :func:`~stressflow.inference.apps.many.fit_many`, write to its ``out_dir``.
    threads_per_task : int
        Threads a task may use (only sizes the default ``workers``).
    """
    from distributed import Client, LocalCluster

    require_int("threads_per_task", threads_per_task, 1)
    if workers is not None and scheduler is not None:
        raise ValueError("give workers (a new local cluster) or scheduler (an existing one), "
                         "not both")
    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is not None:
        if not isinstance(scheduler, str):
            raise ValueError(f"scheduler must be an address such as 'tcp://127.0.0.1:8786' or a "
                             f"distributed.Client, got {scheduler!r}")
        with Client(scheduler) as client:
            yield client
        return
    n = default_workers(threads_per_task) if workers is None else require_int("workers",
                                                                              workers, 1)
    env = dict.fromkeys(THREAD_VARS, "1")
    with (LocalCluster(n_workers=n, threads_per_worker=1, processes=True, env=env,
                       dashboard_address=None) as cluster,
          Client(cluster) as client):
        yield client


@dataclass
class Outcome:
    """What one task gave: its ``value``, or ``error`` (``"Type: message"``) and ``exception``
    when it raised or its worker was lost."""

    name: str
    value: Any = None
    error: str | None = None
    exception: BaseException | None = None


def run_tasks(client, fn: Callable, calls: Mapping[str, tuple[tuple, dict]], *,
              prefix: str = "stressflow") -> Iterator[Outcome]:
    """Submit ``fn(*args, **kwargs)`` for every ``name: (args, kwargs)`` of ``calls`` and yield
    an :class:`Outcome` per task in the order the tasks finish (``distributed.as_completed``).

    Arguments may be ``distributed.Future``\\ s (e.g. from ``client.scatter``): Dask passes
    their values. A task that raises, or whose worker dies, gives an outcome with ``error``
    set; the others go on. Tasks still queued when the caller stops iterating are cancelled.
    """
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    futures = {}
    for name, (args, kwargs) in calls.items():
        future = client.submit(fn, *args, key=f"{prefix}-{name}-{token}", pure=False, **kwargs)
        futures[future] = name
    try:
        for future in as_completed(list(futures)):
            name = futures[future]
            if future.status == "finished":
                outcome = Outcome(name, value=future.result())
            else:
                try:
                    exc = future.exception()
                except BaseException as cancelled:  # CancelledError: no exception to fetch
                    exc = cancelled
                outcome = Outcome(name, error=f"{type(exc).__name__}: {exc}", exception=exc)
            future.release()
            yield outcome
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)


def worker_name() -> str:
    """The Dask worker running this code (its name, e.g. ``"0"``), or ``"local"`` outside one."""
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except ValueError:
        return "local"


def capture_warnings(fn: Callable, *args, **kwargs) -> tuple[Any, list[tuple[type, str]]]:
    """``fn(*args, **kwargs)`` and the warnings it raised, as ``(category, message)`` pairs in
    order, each distinct pair once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = fn(*args, **kwargs)
    seen: list[tuple[type, str]] = []
    for w in caught:
        pair = (w.category, str(w.message))
        if pair not in seen:
            seen.append(pair)
    return value, seen


def replay_warnings(pairs: list[tuple[type, str]]) -> None:
    """Issue in this process the warnings :func:`capture_warnings` recorded in a worker."""
    for category, message in pairs:
        warnings.warn(message, category, stacklevel=3)


def progress_line(done: int, total: int, what: str, text: str, *, file=None) -> None:
    """Print ``[done/total] what: text`` (one line per finished task) to stderr."""
    print(f"[{done}/{total}] {what}: {text}", file=file or sys.stderr, flush=True)
