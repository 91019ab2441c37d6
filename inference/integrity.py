"""Integrity of written files: SHA-256 checksums and atomic writes.

Used by :func:`stressflow.inference.schema.save_fit` / ``load_fit`` and by the feed's
:func:`~stressflow.inference.apps.feed.export`. Design:

* every variable of a fit (coordinates included) carries the SHA-256 of its values
  (:func:`array_sha256`) and every group the SHA-256 of its attributes; a root attribute
  :data:`CHECKSUM_ATTR` says the file has them. :func:`verify_variables` names the first
  variable or group that differs;
* the file ends with a trailer, the SHA-256 of all its bytes (:func:`append_file_checksum`),
  checked before the HDF5 structure is opened (:func:`verify_file_checksum`): damaged HDF5
  metadata can make the reader raise obscure errors or loop for minutes (measured: 20 kB zeroed
  at 62% of a fit file made h5netcdf spin in ``dims.__len__``);
* every write goes to a temporary file in the target's folder, is fsynced and renamed onto the
  target with ``os.replace`` (:func:`atomic_write`), so a writer killed midway leaves the old
  file intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = [
    "CHECKSUM_ATTR", "FILE_TRAILER", "append_file_checksum", "array_sha256", "atomic_write",
    "file_sha256", "verify_file_checksum", "verify_variables", "with_checksums", "write_target",
]

#: Root attribute marking a file whose variables and attributes carry SHA-256 checksums.
CHECKSUM_ATTR = "stressflow_checksums"
_HASH_ATTR = "stressflow_sha256"
#: A fit file ends with this marker, the SHA-256 (hex) of all bytes before it and a newline.
FILE_TRAILER = b"\nSTRESSFLOW-SHA256 "
_TRAILER_LEN = len(FILE_TRAILER) + 64 + 1


def file_sha256(path: str | Path, n_bytes: int | None = None) -> str:
    """SHA-256 (hex) of the first ``n_bytes`` of a file (all of it by default)."""
    path = Path(path)
    n_bytes = path.stat().st_size if n_bytes is None else n_bytes
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = n_bytes
        while left > 0:
            block = f.read(min(1 << 20, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def append_file_checksum(path: str | Path) -> None:
    """Append :data:`FILE_TRAILER`, the SHA-256 of the file's bytes and a newline to ``path``
    (HDF5 readers ignore bytes after the end of the HDF5 data)."""
    path = Path(path)
    digest = file_sha256(path, path.stat().st_size)
    with open(path, "ab") as f:
        f.write(FILE_TRAILER + digest.encode() + b"\n")


def verify_file_checksum(path: str | Path) -> bool:
    """Check the trailer of :func:`append_file_checksum`; False if the file has none, True if
    it matches, ValueError (naming the file) if it does not."""
    path = Path(path)
    size = path.stat().st_size
    if size < _TRAILER_LEN:
        return False
    with open(path, "rb") as f:
        f.seek(size - _TRAILER_LEN)
        tail = f.read(_TRAILER_LEN)
    if not tail.startswith(FILE_TRAILER) or not tail.endswith(b"\n"):
        return False
    stored = tail[len(FILE_TRAILER):-1].decode("ascii", errors="replace")
    if file_sha256(path, size - _TRAILER_LEN) != stored:
        raise ValueError(
            f"{path} is damaged: its SHA-256 differs from the one written at its end (the file "
            "was changed or corrupted after it was written, e.g. a bad copy or disk); restore "
            "it from a copy or refit"
        )
    return True


def array_sha256(values: np.ndarray) -> str:
    """SHA-256 of an array's dtype kind, shape and values, stable across a netCDF round trip.

    Floats hash with every NaN made the canonical NaN (a file stores a NaN's payload only up
    to its fill value); datetimes hash as int64 nanoseconds; strings and objects as UTF-8 text
    joined by NUL (whether stored as fixed-width or object strings); booleans as uint8.
    """
    a = np.asarray(values)
    text = a.dtype.kind in "USO"
    h = hashlib.sha256(f"{'T' if text else a.dtype.kind}{a.shape}".encode())
    if text:
        items = (v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in a.ravel().tolist())
        h.update("\x00".join(items).encode("utf-8"))
        return h.hexdigest()
    if a.dtype.kind == "M":
        a = a.astype("datetime64[ns]").view(np.int64)
    elif a.dtype.kind == "b":
        a = a.astype(np.uint8)
    elif a.dtype.kind in "fc":
        a = np.where(np.isnan(a), np.nan, a).astype(a.dtype.newbyteorder("<"))
    else:
        a = a.astype(a.dtype.newbyteorder("<"))
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _attrs_sha256(attrs: dict) -> str:
    plain = {str(k): np.asarray(v).tolist() if not isinstance(v, str) else v
             for k, v in attrs.items() if k not in (_HASH_ATTR, CHECKSUM_ATTR)}
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()


def with_checksums(result: xr.DataTree) -> xr.DataTree:
    """A copy of ``result`` whose every variable and every node's attributes carry a SHA-256."""
    nodes = {}
    for node in result.subtree:
        ds = node.to_dataset(inherit=False).copy(deep=False)
        for var in ds.variables.values():
            var.attrs = {**var.attrs, _HASH_ATTR: array_sha256(var.values)}
        ds.attrs = {**ds.attrs, _HASH_ATTR: _attrs_sha256(ds.attrs)}
        nodes[node.path] = ds
    nodes["/"].attrs[CHECKSUM_ATTR] = "sha256 of every variable and of every group's attributes"
    return xr.DataTree.from_dict(nodes)


def verify_variables(tree: xr.DataTree, where: str) -> xr.DataTree:
    """Check and strip the stored checksums; ValueError naming the damaged variable."""
    if CHECKSUM_ATTR not in tree.attrs:
        return tree  # written before checksums existed
    nodes = {}
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False).copy(deep=False)
        for name, var in ds.variables.items():
            stored = var.attrs.get(_HASH_ATTR)
            if stored is None or array_sha256(var.values) != stored:
                what = "has no checksum" if stored is None else "does not match its checksum"
                raise ValueError(
                    f"{where} is damaged: variable {node.path.rstrip('/')}/{name} {what} "
                    "(the file was changed or corrupted after it was written); restore it from "
                    "a copy or refit"
                )
            var.attrs = {k: v for k, v in var.attrs.items() if k != _HASH_ATTR}
        if ds.attrs.get(_HASH_ATTR) != _attrs_sha256(ds.attrs):
            raise ValueError(
                f"{where} is damaged: the attributes of group {node.path} do not match their "
                "checksum (the file was changed or corrupted after it was written)"
            )
        ds.attrs = {k: v for k, v in ds.attrs.items() if k not in (_HASH_ATTR, CHECKSUM_ATTR)}
        nodes[node.path] = ds
    return xr.DataTree.from_dict(nodes)


def write_target(path: str | Path) -> tuple[Path, str | None]:
    """The file a write to ``path`` replaces (``~`` expanded, a link followed) and why no file
    can be written there, or ``None`` if one can: it is a folder, its folder does not exist or
    is not writable, or it is a device or pipe that is not writable."""
    target = Path(path).expanduser()
    if target.is_symlink():
        target = target.resolve()
    if target.is_dir():
        return target, "it is a folder; give a file name"
    if target.exists() and not target.is_file():
        return target, None if os.access(target, os.W_OK) else "it is not writable"
    if not target.parent.is_dir():
        return target, f"the folder {target.parent} does not exist"
    if not os.access(target.parent, os.W_OK | os.X_OK):
        return target, f"the folder {target.parent} is not writable"
    return target, None


@contextlib.contextmanager
def atomic_write(path: str | Path):
    """Yield a temporary path in ``path``'s folder; on success fsync it and ``os.replace`` it
    onto ``path`` (then fsync the folder), so ``path`` is either the old file or the new one,
    never a partial write. On an exception the temporary file is removed.

    ``~`` is expanded; a symbolic link is written through (its target is replaced, the link
    stays); an existing path that is not a regular file (``/dev/stdout``, a named pipe) is
    yielded as is, since nothing can be renamed onto it."""
    path, problem = write_target(path)
    if problem is not None:  # the path asked for in the message, not the temporary file's
        error = (IsADirectoryError if path.is_dir()
                 else FileNotFoundError if not path.parent.is_dir() else PermissionError)
        raise error(f"cannot write {path}: {problem}")
    if path.exists() and not path.is_file():
        yield path
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
