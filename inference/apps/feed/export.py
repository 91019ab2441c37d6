"""The feed as CSV or Parquet with its schema metadata, and reading it back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from stressflow.inference import schema
from stressflow.inference.apps.feed.columns import (
    FEED_SCHEMA,
    FEED_SCHEMA_VERSION,
    PANEL_FEED_SCHEMA,
    conform,
    feed,
)
from stressflow.inference.fitting.assemble import package_version
from stressflow.inference.integrity import array_sha256, atomic_write, file_sha256

__all__ = ["export", "read_feed"]


def _feed_metadata(fit: xr.DataTree, columns) -> dict:
    return {
        "feed_schema_version": FEED_SCHEMA_VERSION,
        "panel": columns is PANEL_FEED_SCHEMA,
        "columns": [c._asdict() for c in columns],
        "stressflow_version": package_version(),
        "fit_schema_version": int(np.asarray(fit.attrs.get("schema_version", -1)).item()),
        "fit_stressflow_version": str(fit.attrs.get("stressflow_version", "")),
        "fit_data_hash": str(fit.attrs.get("data_hash", "")),
        "feed_data_hash": str(fit.attrs.get("feed_data_hash", fit.attrs.get("data_hash", ""))),
        "fit_start": str(fit.attrs.get("start", fit.attrs.get("data_start", ""))),
        "fit_end": str(fit.attrs.get("end", fit.attrs.get("data_end", ""))),
        "feed_end": str(fit.attrs.get("feed_end", fit.attrs.get("end", ""))),
        "source": str(fit.attrs.get("source", "")),
    }


def export(fit: xr.DataTree, path, format: str = "csv") -> Path:
    """Write :func:`feed` to ``path`` as CSV or Parquet, with its schema metadata.

    One row per date with the columns of :data:`FEED_SCHEMA` (version
    :data:`FEED_SCHEMA_VERSION`), in order; for a panel fit one row per (date, asset) with the
    columns of :data:`PANEL_FEED_SCHEMA` (:func:`stressflow.inference.apps.panel_assets
    .panel_feed`; the metadata's ``panel`` is true). Parquet keeps the dtypes and stores the
    metadata (schema version, column meanings, package version, data hashes, date range) under the
    key ``stressflow``; CSV writes dates as ``YYYY-MM-DD``, booleans as ``True``/``False``,
    missing values as empty fields and floats at full precision, and the same metadata to
    ``<path>.meta.json`` beside it. :func:`read_feed` reads either back with the schema's
    dtypes.

    Integrity: the CSV's metadata holds the SHA-256 of the CSV file (``sha256``), the
    Parquet's the SHA-256 of each column's values (``columns_sha256``); :func:`read_feed`
    checks them. Each file is written to a temporary file in the same folder, synced and
    renamed onto its path (a writer killed midway leaves the old file intact).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if format not in ("csv", "parquet"):
        raise ValueError(f"format must be 'csv' or 'parquet', got {format!r}")
    if schema.is_panel(fit):
        from stressflow.inference.apps.panel_assets import panel_feed

        frame, columns = panel_feed(fit), PANEL_FEED_SCHEMA
    else:
        frame, columns = feed(fit), FEED_SCHEMA
    meta = _feed_metadata(fit, columns)
    path = Path(path)
    if format == "csv":
        with atomic_write(path) as tmp:
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
            meta["sha256"] = file_sha256(tmp)
        with atomic_write(f"{path}.meta.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta["columns_sha256"] = {c: array_sha256(frame[c].to_numpy()) for c in frame.columns}
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"stressflow": json.dumps(meta).encode()}
        )
        with atomic_write(path) as tmp:
            pq.write_table(table, tmp)
    return path


def read_feed(path) -> pd.DataFrame:
    """Read a file written by :func:`export` back with the dtypes of :data:`FEED_SCHEMA`
    (:data:`PANEL_FEED_SCHEMA` for a panel fit's feed).

    Raises ``ValueError`` if the columns differ from the schema (names or order), the file
    says it has another feed schema version, or the file does not match its stored checksums
    (the CSV's SHA-256, or a Parquet column's: the message names the column).
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(b"stressflow", b"{}"))
        frame = table.to_pandas()
        for name, digest in meta.get("columns_sha256", {}).items():
            if name not in frame.columns or array_sha256(frame[name].to_numpy()) != digest:
                raise ValueError(
                    f"{path} is damaged: column {name!r} does not match its stored checksum "
                    "(the file was changed or corrupted after it was written); export it again"
                )
    else:
        dates = [c.name for c in FEED_SCHEMA if c.dtype.startswith("datetime")]
        frame = pd.read_csv(path, parse_dates=dates, dtype={"asset": str})
        side = Path(f"{path}.meta.json")
        meta = json.loads(side.read_text()) if side.exists() else {}
        if "sha256" in meta and file_sha256(path) != meta["sha256"]:
            raise ValueError(
                f"{path} is damaged: its SHA-256 differs from the one in {side.name} (the file "
                "was changed or corrupted after it was written); export it again"
            )
    version = meta.get("feed_schema_version", FEED_SCHEMA_VERSION)
    if version != FEED_SCHEMA_VERSION:
        raise ValueError(
            f"{path} has feed schema version {version}; this stressflow reads version "
            f"{FEED_SCHEMA_VERSION}"
        )
    columns = PANEL_FEED_SCHEMA if meta.get("panel", "asset" in frame.columns) else FEED_SCHEMA
    names = [c.name for c in columns]
    if list(frame.columns) != names:
        which = "PANEL_FEED_SCHEMA" if columns is PANEL_FEED_SCHEMA else "FEED_SCHEMA"
        raise ValueError(f"{path}: columns {list(frame.columns)} differ from {which} {names}")
    return conform(frame, columns)


