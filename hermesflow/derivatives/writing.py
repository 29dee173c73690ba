"""The one atomic writer: every file hermesflow produces goes through :func:`write_bytes`.

Each writer builds the whole content in memory (or streams a copy), writes it to a hidden
temporary file with a unique name in the target folder, flushes it to disk (``fsync``) and
renames it into place, so a crash never leaves a half-written output, a reader never sees one,
and two writers never share a temporary file.  The folder is flushed after the rename; a sink
that writes several files into one folder flushes it once (:func:`folders_synced_once`).
Files a Nipype node writes into its own working folder are a cache, not outputs: they are
written with ``sync=False`` (atomic, not flushed), as Nipype writes its own.  Gzipped NIfTI
files carry no timestamp or file name, so the same data give the same bytes.  Orphans of a killed run (``.<name>.*.tmp``) are
found by :func:`orphan_temp_files`.
"""

from __future__ import annotations

import filecmp
import functools
import gzip
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np
import pandas as pd
from isal import igzip

TEMP_SUFFIX = ".tmp"


# Folders renamed into while inside folders_synced_once(); None: flush each after its rename.
_PENDING: set[Path] | None = None


def _atomic(path: str | Path, fill: Callable[[BinaryIO], None], sync: bool = True) -> Path:
    """Create ``path`` from what ``fill`` writes into an open temporary file; ``sync``: flush
    the file before the rename and its folder after it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync:
        if _PENDING is None:
            _fsync_folder(path.parent)
        else:
            _PENDING.add(path.parent)
    return path


@contextmanager
def folders_synced_once() -> Iterator[None]:
    """Flush each folder written into inside the block once, at its end, instead of after
    every file (a session sink writes four or five files into one folder)."""
    global _PENDING
    if _PENDING is not None:  # nested: the outer block flushes
        yield
        return
    _PENDING = set()
    try:
        yield
    finally:
        folders, _PENDING = _PENDING, None
        for folder in sorted(folders):
            _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | Path, content: bytes, sync: bool = True) -> Path:
    """Write ``content`` to ``path`` atomically."""
    return _atomic(path, lambda handle: handle.write(content), sync)


def copy_file(source: str | Path, target: str | Path) -> Path:
    """Copy ``source`` to ``target`` atomically (streamed, never whole in memory), with the
    source's modification time.

    A ``target`` that already holds the same bytes is left in place: a re-run (another atlas,
    a cached graph) would otherwise rewrite and flush every map.  As ``rsync`` does, a target
    with the source's size and modification time (:func:`same_file`) is taken as a copy of it
    without reading either; a target of the same size with another time is compared byte for
    byte, and given the source's time when it holds the same bytes.
    """
    if same_file(source, target):
        return Path(target)
    stamp = os.stat(source)
    if _same_bytes(source, target):
        os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        return Path(target)

    def fill(handle: BinaryIO) -> None:
        with open(source, "rb") as reader:
            shutil.copyfileobj(reader, handle, length=1 << 20)
        handle.flush()
        os.utime(handle.fileno(), ns=(stamp.st_atime_ns, stamp.st_mtime_ns))

    return _atomic(target, fill)


def same_file(source: str | Path, target: str | Path) -> bool:
    """Whether ``target`` is what :func:`copy_file` left from ``source``: same size, same
    modification time (two ``stat`` calls, nothing read)."""
    try:
        theirs, ours = os.stat(source), os.stat(target)
    except OSError:
        return False
    return theirs.st_size == ours.st_size and theirs.st_mtime_ns == ours.st_mtime_ns


def _same_bytes(source: str | Path, target: str | Path) -> bool:
    try:
        return filecmp.cmp(source, target, shallow=False)
    except OSError:
        return False


def write_text(path: str | Path, text: str, sync: bool = True) -> Path:
    return write_bytes(path, text.encode("utf-8"), sync)


def write_json(path: str | Path, content: dict, sync: bool = True) -> Path:
    return write_text(path, json.dumps(content, indent=2, default=_json_default) + "\n", sync)


def write_tsv(path: str | Path, table: pd.DataFrame, float_format: str | None = None,
              sync: bool = True) -> Path:
    """Write a BIDS TSV: tab-separated, ``n/a`` for missing values, no index."""
    return write_text(path, table.to_csv(sep="\t", index=False, na_rep="n/a",
                                         lineterminator="\n", float_format=float_format), sync)


def write_nifti(path: str | Path, img: nib.Nifti1Image, compresslevel: int = 4,
                sync: bool = True) -> Path:
    """Write a NIfTI image; ``.nii.gz`` is compressed without a timestamp (same bytes).

    ``compresslevel`` is gzip's (0-9): 1 takes about half the time of 4 for a few percent
    more bytes on noisy BOLD (the simulator's choice).  The bytes are a standard gzip stream
    made by ISA-L (:func:`gzip_compress`), which any gzip reader opens.
    """
    path = Path(path)
    img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)
    if img.header.get_xyzt_units()[0] == "unknown":
        img.header.set_xyzt_units("mm", "sec" if img.ndim == 4 else None)
    raw = img.to_bytes()
    if path.name.endswith(".gz"):
        raw = gzip_compress(raw, compresslevel)
    return write_bytes(path, raw, sync)


def read_whole(path: str | Path) -> nib.Nifti1Image:
    """A NIfTI-1 image read into memory in one go, gzip undone by ISA-L in one call (a third
    of the time of Python's ``gzip`` stream, which nibabel reads through); other formats go to
    nibabel's own reader."""
    path = str(path)
    raw = Path(path).read_bytes()
    if path.endswith(".gz"):
        raw = igzip.decompress(raw)
    try:
        return nib.Nifti1Image.from_bytes(raw)
    except (nib.filebasedimages.ImageFileError, ValueError):
        return nib.load(path)  # NIfTI-2 and the rest


def stream_volumes(img: nib.Nifti1Image, path: str | Path):
    """Each raw (unscaled) volume of a 4D NIfTI in turn, flat in F order, in one buffer that
    the next volume overwrites (gzip undone by ISA-L); no 4D array is made.

    ``img`` is the file's image as nibabel opened it (for the header, the data's offset and
    a NIfTI pair's data file); ``path`` the file.  A short file raises ``EOFError``.
    """
    proxy = img.dataobj
    n_volumes = img.shape[3]
    volume = np.empty(int(np.prod(img.shape[:3])), proxy.dtype)
    name = str(proxy.file_like if isinstance(proxy.file_like, (str, Path)) else path)
    opener = igzip.open if name.endswith(".gz") else nib.openers.Opener
    with opener(name, "rb") as stream:
        stream.seek(int(proxy.offset))
        for k in range(n_volumes):
            if stream.readinto(memoryview(volume).cast("B")) != volume.nbytes:
                raise EOFError(f"volume {k + 1} of {n_volumes} is cut short")
            yield volume


def mean_volume(path: str | Path) -> nib.Nifti1Image:
    """The temporal mean of a 4D series as float32, streamed (:func:`stream_volumes`)."""
    img = nib.load(str(path))
    total = np.zeros(int(np.prod(img.shape[:3])), np.float64)
    for volume in stream_volumes(img, path):
        total += volume
    mean = total / img.shape[3] * float(img.dataobj.slope) + float(img.dataobj.inter)
    return nib.Nifti1Image(mean.astype(np.float32).reshape(img.shape[:3], order="F"),
                           img.affine)


@functools.lru_cache(maxsize=8)
def _read_map(path: str, size: int, mtime_ns: int) -> nib.Nifti1Image:
    return read_whole(path)


def read_map(path: str | Path) -> nib.Nifti1Image:
    """A small image (a statistical map, a mask) read by :func:`read_whole` and kept for the
    process while the file is unchanged: an atlas's ROI measures and its page read the same
    z map, mask and lesion.  Not for BOLD series (they would stay in memory)."""
    stat = os.stat(path)
    return _read_map(str(path), stat.st_size, stat.st_mtime_ns)


def gzip_compress(raw: bytes, compresslevel: int = 4) -> bytes:
    """gzip ``raw`` without a timestamp (the same bytes for the same content).

    Intel's ISA-L (``isal``) writes the same gzip format about 5x faster than zlib at a
    similar ratio on BOLD data (measured on a 40x48x40x120 float32 series: 0.20 s against
    1.0 s at level 1, 58 % of the bytes either way).  Its levels are 0-3; zlib's 1 maps to
    ISA-L's 1 and anything higher to its 2, faster than zlib's 4 and as small.  Level 0 stores.
    """
    if compresslevel <= 0:
        return gzip.compress(raw, compresslevel=0, mtime=0)
    return igzip.compress(raw, compresslevel=1 if compresslevel == 1 else 2, mtime=0)


def write_figure(path: str | Path, figure, **savefig_options) -> Path:
    """Save a matplotlib figure atomically (format from the file's suffix)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **savefig_options)
    return write_bytes(path, buffer.getvalue())


def orphan_temp_files(folder: str | Path) -> list[Path]:
    """Temporary files left under ``folder`` by a writer that was killed mid-write."""
    return sorted(p for p in Path(folder).rglob(f".*{TEMP_SUFFIX}") if p.is_file())


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
