"""Atomic, reproducible writing of every file hermesflow produces.

Each writer builds the whole content in memory, writes it to a hidden temporary file in the
target folder and renames it into place, so a crash never leaves a half-written output and a
reader never sees one.  Gzipped NIfTI files carry no timestamp or file name, so the same data
give the same bytes.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd


def write_bytes(path: str | Path, content: bytes) -> Path:
    """Write ``content`` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, content: dict) -> Path:
    return write_text(path, json.dumps(content, indent=2, default=_json_default) + "\n")


def write_tsv(path: str | Path, table: pd.DataFrame) -> Path:
    """Write a BIDS TSV: tab-separated, ``n/a`` for missing values, no index."""
    return write_text(path, table.to_csv(sep="\t", index=False, na_rep="n/a",
                                         lineterminator="\n"))


def write_nifti(path: str | Path, img: nib.Nifti1Image) -> Path:
    """Write a NIfTI image; ``.nii.gz`` is compressed without a timestamp (same bytes)."""
    path = Path(path)
    img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)
    if img.header.get_xyzt_units()[0] == "unknown":
        img.header.set_xyzt_units("mm", "sec" if img.ndim == 4 else None)
    raw = img.to_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=4, mtime=0)
    return write_bytes(path, raw)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
