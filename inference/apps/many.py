"""Many fits at once on ``dask.distributed``: one fit per asset, or per window of one series.

:func:`fit_many` fits several datasets (dimension ``asset``), :func:`fit_windows` several
windows of one series (dimension ``window``; :func:`rolling_windows` makes rolling ones). Each
task is one :func:`~stressflow.inference.fitting.fit.fit` (one set of chains) run on a Dask
worker (:mod:`stressflow.inference.apps.cluster`: a local cluster of single-threaded worker
processes by default, or an existing cluster). As each task finishes:

* the worker saves its fit with :func:`~stressflow.inference.schema.save_fit` (atomic,
  checksummed) to ``out_dir/<name>.nc``;
* the caller prints one line (status, time, worker, R-hat) and rewrites the summary
  ``out_dir/summary.nc`` (:func:`save_summary`: atomic, checksummed), a labelled
  ``xarray.Dataset`` over the tasks, so a run stopped midway leaves the finished tasks'
  results (the others ``"pending"``).

A task that fails is reported in the summary, never raised: ``status`` is ``"ok"``,
``"not_converged"`` (:func:`~stressflow.inference.postprocess.diagnostics.check_fit` found a
problem; the fit is saved and ``message`` says what), ``"failed"`` (the data or window was
refused: ``DataError``/``ValueError``, no fit) or ``"error"`` (another exception, or the worker
was lost), and the other tasks go on.

Every worker process compiles the model's log density once and reuses it for every later task
with the same model options (``compile_cached`` and ``worker_task`` in the summary say which
task paid the compile).
"""

from __future__ import annotations

import json
import os
import re
import resource
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.data import DataError, read_prices
from stressflow.data.window import to_timestamp
from stressflow.inference.apps.cluster import (
    capture_warnings,
    open_client,
    progress_line,
    run_tasks,
    worker_name,
)
from stressflow.inference.fitting.fit import fit
from stressflow.inference.integrity import (
    append_file_checksum,
    atomic_write,
    verify_file_checksum,
    verify_variables,
    with_checksums,
)
from stressflow.inference.postprocess.diagnostics import FitWarning, check_fit
from stressflow.inference.schema import save_fit
from stressflow.models import dims
from stressflow.models.messages import require_int

__all__ = ["STATUSES", "SUMMARY_FILE", "fit_many", "fit_windows", "rolling_windows",
           "fit_task", "peak_rss_mb", "tasks_summary", "save_summary", "load_summary"]

#: Status of a task in the summary (see the module docstring).
STATUSES = ("ok", "not_converged", "failed", "error", "pending")
#: File name of the summary in ``out_dir``.
SUMMARY_FILE = "summary.nc"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Tasks this process has run (the ``worker_task`` number of the next one, minus one).
_TASKS_RUN = 0


def fit_task(data, *, start=None, end=None, cut_at_end: bool = False, out_path=None,
             fit_kwargs: Mapping | None = None) -> dict:
    """Run one fit in this process (a Dask worker or not) and summarise it.

    With ``cut_at_end`` the fit receives only the rows of ``data`` (a price frame from
    :func:`stressflow.data.read_prices`) dated up to ``end``. The fit is saved to
    ``out_path`` when given. Returns a dict: ``status``, ``message`` (the error, or the
    convergence problems one per line), ``warnings`` (the data warnings, one per line), the
    diagnostics, ``wall_s`` (this call), ``compile_s``, ``compile_cached``, ``sampling_s``,
    ``worker``, ``worker_task`` (1 for this process's first task), ``peak_rss_mb`` (this
    process's peak resident memory so far) and, with a fit, ``time`` and the posterior-mean
    ``filtered`` = ``Pr(stage_t = k | y_1..y_t)`` and ``smoothed`` = ``Pr(stage_t = k |
    y_1..y_T)`` (T the window's last day) probabilities (time x stage).
    """
    global _TASKS_RUN
    _TASKS_RUN += 1
    t0 = time.perf_counter()
    record: dict = {"worker": worker_name(), "worker_task": _TASKS_RUN, "message": "",
                    "warnings": ""}

    def run():
        rows = data
        if cut_at_end and end is not None:
            rows = data.loc[data.index <= to_timestamp(end, "end")]
        result = fit(rows, start=start, end=end, **dict(fit_kwargs or {}))
        if isinstance(data, str | os.PathLike):
            result.attrs["source"] = str(data)
        return result

    try:
        result, caught = capture_warnings(run)
    except (DataError, ValueError, FileNotFoundError) as exc:
        record.update(status="failed", message=f"{type(exc).__name__}: {exc}")
    else:
        diag = check_fit(result, warn=False)
        timings = json.loads(result.attrs["timings"])
        if out_path is not None:
            save_fit(result, out_path)
        stages = result["stages"]
        record.update(
            status="ok" if diag.ok else "not_converged", message="\n".join(diag.problems),
            warnings="\n".join(m for c, m in caught if not issubclass(c, FitWarning)),
            max_rhat=diag.max_rhat, min_ess_bulk=diag.min_ess_bulk,
            min_ess_tail=diag.min_ess_tail, divergences=diag.divergences,
            n_days=int(result.attrs["n_days"]), compile_s=timings["compile"],
            compile_cached=bool(timings["compile_cached"]), sampling_s=timings["sampling"],
            time=stages[dims.TIME].values, filtered=stages["filtered"].values,
            smoothed=stages["smoothed"].values, file=str(out_path or ""),
            stages=[str(k) for k in stages[dims.STAGE].values],
        )
    record["wall_s"] = time.perf_counter() - t0
    record["peak_rss_mb"] = peak_rss_mb()
    return record


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB: Linux's ``VmHWM``, which starts
    afresh in a new program (``getrusage``'s ``ru_maxrss``, used elsewhere, keeps the peak of
    the process a worker was forked from)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fit_many(tasks: Mapping[str, object], *, out_dir, start=None, end=None,
             workers: int | None = None, scheduler=None, threads_per_task: int = 1,
             progress: bool = True, **fit_kwargs) -> xr.Dataset:
    """Fit each of several datasets on Dask workers; one fit file each and a labelled summary.

    Parameters
    ----------
    tasks : mapping of str to data
        ``name: data`` with data as for :func:`~stressflow.inference.fitting.fit.fit` (a
        bundled dataset name, a CSV/Parquet path or a price DataFrame), e.g. ``{"sp500":
        "sp500", "spy": "spy"}``. Names are file names: letters, digits, ``.``, ``_``, ``-``.
    out_dir : path
        Folder of the fit files ``<name>.nc`` and of ``summary.nc`` (created if missing; on an
        existing cluster the workers must be able to write to it).
    start, end : date-like, optional
        Fit window of every task.
    workers, scheduler, threads_per_task
        Where to run (:func:`stressflow.inference.apps.cluster.open_client`): a new local
        cluster of ``workers`` processes, or an existing cluster's ``scheduler`` address.
        Each fit samples ``threads_per_task`` chains at once (``fit(cores=...)``).
    progress : bool
        Print one line per finished task to stderr.
    **fit_kwargs
        Passed to every fit (``chains``, ``draws``, ``tune``, ``seed``, ``spec``, ...).

    Returns
    -------
    xarray.Dataset
        The summary (also written to ``out_dir/summary.nc``), dims ``asset``, ``time`` (the
        union of the tasks' dates) and ``stage``: ``filtered`` = ``Pr(stage_t = k |
        y_1..y_t)`` and ``smoothed`` = ``Pr(stage_t = k | y_1..y_T)`` (T the task's last
        day), posterior means, NaN outside a task's window; per task ``status``, ``message``,
        ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences`` (-1 without a
        fit), ``fit_start``, ``fit_end``, ``n_days``, ``wall_s``, ``compile_s``,
        ``compile_cached``, ``sampling_s``, ``worker``, ``worker_task``, ``peak_rss_mb``,
        ``file``, ``warnings``.
    """
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError("tasks must be a non-empty mapping name -> data, e.g. "
                         "{'sp500': 'sp500', 'spy': 'spy'}")
    calls = {name: {"data": data, "start": start, "end": end}
             for name, data in tasks.items()}
    return _run(dims.ASSET, calls, out_dir=out_dir, workers=workers, scheduler=scheduler,
                threads_per_task=threads_per_task, progress=progress, fit_kwargs=fit_kwargs)


def fit_windows(data, windows, *, out_dir, workers: int | None = None, scheduler=None,
                threads_per_task: int = 1, progress: bool = True, columns=None,
                date_column: str = "date", **fit_kwargs) -> xr.Dataset:
    """Fit several windows of one series on Dask workers, as :func:`fit_many` does assets.

    ``windows`` is a sequence of ``(start, end)`` pairs (named ``<start>_<end>``, e.g.
    ``2009-01-02_2013-12-31``) or a mapping ``name: (start, end)``. Each window's fit receives
    only the rows dated up to its ``end`` (as a fit made on that day would), with the rows
    before ``start`` as history for the trailing observables. ``data`` is read and validated
    once (:func:`stressflow.data.read_prices`, with ``columns`` and ``date_column``) and sent
    to each worker once. A window the data cannot serve (no rows, start after end) is a
    ``"failed"`` task in the summary. Returns the summary with dimension ``window`` and the
    coordinates ``window_start`` / ``window_end`` (as requested); the rest as
    :func:`fit_many`.
    """
    if isinstance(windows, Mapping):
        named = dict(windows)
    elif isinstance(windows, Sequence) and not isinstance(windows, str):
        named = {}
        for pair in windows:
            first, last = _pair(pair, pair)
            name = f"{first:%Y-%m-%d}_{last:%Y-%m-%d}"
            if name in named:
                raise ValueError(f"window {name} is given twice")
            named[name] = pair
    else:
        raise ValueError("windows must be a sequence of (start, end) pairs or a mapping "
                         "name -> (start, end)")
    if not named:
        raise ValueError("windows is empty")
    prices = read_prices(data, columns=columns, date_column=date_column)
    calls = {}
    for name, pair in named.items():
        first, last = _pair(pair, name)
        calls[name] = {"data": prices, "start": first, "end": last, "cut_at_end": True}
    coords = {"window_start": (dims.WINDOW, [c["start"] for c in calls.values()]),
              "window_end": (dims.WINDOW, [c["end"] for c in calls.values()])}
    return _run(dims.WINDOW, calls, out_dir=out_dir, workers=workers, scheduler=scheduler,
                threads_per_task=threads_per_task, progress=progress, fit_kwargs=fit_kwargs,
                coords=coords)


def rolling_windows(data, *, window_days: int, step: int, n_windows: int | None = None,
                    end=None, columns=None, date_column: str = "date") -> list:
    """``(start, end)`` pairs of ``window_days`` trading days of ``data`` ending every ``step``
    rows, the last ending at ``end`` (default: the last row), oldest first; at most
    ``n_windows`` (default: as many as the rows allow)."""
    window_days, step = require_int("window_days", window_days, 1), require_int("step", step, 1)
    index = read_prices(data, columns=columns, date_column=date_column).index
    if end is not None:
        index = index[index <= to_timestamp(end, "end")]
    last = len(index) - 1
    ends = list(range(last, window_days - 2, -step))
    if n_windows is not None:
        ends = ends[:n_windows]
    if not ends:
        raise DataError(f"no window of {window_days} rows fits in the {len(index)} rows of the "
                        "data up to the end")
    return [(index[e - window_days + 1], index[e]) for e in reversed(ends)]


def _pair(pair, where) -> tuple[pd.Timestamp, pd.Timestamp]:
    if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise ValueError(f"window {where!r} must be a (start, end) pair, got {pair!r}")
    return (to_timestamp(pair[0], f"window {where!r}: start"),
            to_timestamp(pair[1], f"window {where!r}: end"))


def _run(dim, calls, *, out_dir, workers, scheduler, threads_per_task, progress, fit_kwargs,
         coords=None) -> xr.Dataset:
    out_dir = Path(out_dir).resolve()  # the workers' working folder may differ
    for name in calls:
        if not isinstance(name, str) or not _NAME.match(name) or f"{name}.nc" == SUMMARY_FILE:
            raise ValueError(f"task name {name!r} is not usable as a file name: use letters, "
                             f"digits, '.', '_' and '-', not starting with '.', and not "
                             f"{SUMMARY_FILE[:-3]!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    fit_kwargs = {"cores": threads_per_task, **fit_kwargs}
    attrs = {"dim": dim, "fit_kwargs": _json(fit_kwargs), "created":
             pd.Timestamp.now(tz="UTC").isoformat()}
    records: dict[str, dict] = {}
    summary_path = out_dir / SUMMARY_FILE
    with open_client(workers, scheduler, threads_per_task=threads_per_task) as client:
        attrs["n_workers"] = len(client.scheduler_info(n_workers=-1)["workers"])
        shared = {}
        submit = {}
        for name, call in calls.items():
            data = call["data"]
            if isinstance(data, pd.DataFrame):  # send each frame to the workers once
                data = shared.setdefault(id(data), client.scatter(data))
            kwargs = {**call, "data": data, "out_path": str(out_dir / f"{name}.nc"),
                      "fit_kwargs": fit_kwargs}
            submit[name] = ((), kwargs)
        save_summary(tasks_summary(dim, list(calls), records, attrs, coords), summary_path)
        for done, outcome in enumerate(run_tasks(client, fit_task, submit, prefix=f"fit-{dim}"),
                                       start=1):
            record = outcome.value if outcome.error is None else {"status": "error",
                                                                  "message": outcome.error}
            records[outcome.name] = record
            save_summary(tasks_summary(dim, list(calls), records, attrs, coords), summary_path)
            if progress:
                progress_line(done, len(calls), f"{dim} {outcome.name}", _describe(record))
    return tasks_summary(dim, list(calls), records, attrs, coords)


def _describe(record: dict) -> str:
    if "wall_s" not in record or "max_rhat" not in record:
        return f"{record['status']} ({record['message']})"
    compile_note = "compile reused" if record["compile_cached"] else "compiled"
    text = (f"{record['status']} in {record['wall_s']:.1f} s on worker {record['worker']} "
            f"(its task {record['worker_task']}, {compile_note}); max R-hat "
            f"{record['max_rhat']:.3f}, {record['divergences']} divergences")
    problems = [p.split(":")[0] for p in record["message"].splitlines() if p]
    return text + (f"; {', '.join(problems)}" if problems else "")


def _json(kwargs: Mapping) -> str:
    plain = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in kwargs.items()}
    return json.dumps(plain, default=str, sort_keys=True)


_SCALARS = {  # name: (dtype, value without a fit)
    "max_rhat": (float, np.nan), "min_ess_bulk": (float, np.nan),
    "min_ess_tail": (float, np.nan), "divergences": (np.int64, -1), "n_days": (np.int64, 0),
    "wall_s": (float, np.nan), "compile_s": (float, np.nan), "compile_cached": (bool, False),
    "sampling_s": (float, np.nan), "worker_task": (np.int64, 0),
    "peak_rss_mb": (float, np.nan),
}
_TEXT = ("status", "message", "worker", "file", "warnings")


def tasks_summary(dim: str, names: list[str], records: Mapping[str, dict], attrs: Mapping,
            coords: Mapping | None = None) -> xr.Dataset:
    """The labelled summary of the tasks ``names`` from their finished ``records`` (see
    :func:`fit_many` for its variables; a task without a record is ``"pending"``)."""
    done = [records.get(n, {}) for n in names]
    times = sorted({t for r in done for t in r.get("time", ())})
    index = pd.DatetimeIndex(times)
    stages = list(dims.STAGES)
    stages += sorted({k for r in done for k in r.get("stages", ()) if k not in stages},
                     key=lambda k: int(k.removeprefix(dims.EXTRA_STAGE_PREFIX)))
    shape = (len(names), len(index), len(stages))
    probs = {"filtered": np.full(shape, np.nan), "smoothed": np.full(shape, np.nan)}
    for i, rec in enumerate(done):
        if "time" in rec:
            rows = index.get_indexer(pd.DatetimeIndex(rec["time"]))
            # by stage name; a stage the task's model lacks (four stages: discretionary) has
            # probability 0 on its days, as in the feed
            cols = [stages.index(k) for k in rec.get("stages", dims.LADDER)]
            for key, arr in probs.items():
                arr[i, rows] = 0.0
                arr[i, rows[:, None], cols] = rec[key]
    data = {key: ((dim, dims.TIME, dims.STAGE), arr) for key, arr in probs.items()}
    for key, (dtype, missing) in _SCALARS.items():
        data[key] = ((dim,), np.array([r.get(key, missing) for r in done], dtype=dtype))
    for key in _TEXT:
        default = "pending" if key == "status" else ""
        data[key] = ((dim,), np.array([str(r.get(key, default)) for r in done], dtype=object))
    for key, pick in (("fit_start", 0), ("fit_end", -1)):
        data[key] = ((dim,), pd.DatetimeIndex([pd.Timestamp(r["time"][pick]) if "time" in r
                                               else pd.NaT for r in done]).values)
    ds = xr.Dataset(data, coords={dim: names, dims.TIME: index, dims.STAGE: stages,
                                  **dict(coords or {})}, attrs=dict(attrs))
    ds["filtered"].attrs["meaning"] = "Pr(stage_t = k | y_1..y_t), posterior mean"
    ds["smoothed"].attrs["meaning"] = ("Pr(stage_t = k | y_1..y_T), T the task's last day, "
                                       "posterior mean")
    return ds


def save_summary(ds: xr.Dataset, path) -> Path:
    """Write a summary to netCDF atomically, with the checksums of a fit file
    (:mod:`stressflow.inference.integrity`)."""
    path = Path(path)
    tree = with_checksums(xr.DataTree(ds))
    with atomic_write(path) as tmp:
        tree.to_netcdf(tmp, engine="h5netcdf")
        append_file_checksum(tmp)
    return path


def load_summary(path) -> xr.Dataset:
    """Read a summary written by :func:`save_summary`, its checksums verified."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no summary file at {path}")
    verify_file_checksum(path)
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        loaded = tree.load()
    return verify_variables(loaded, str(path)).to_dataset()
