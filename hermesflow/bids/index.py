"""pybids' index of a raw dataset, kept in the work folder and reused while the dataset is
unchanged.

Indexing reads every file name and JSON sidecar of the dataset (0.4 s for a 12-participant
trial, more for a real one) and every run used to pay it again.  The index is saved as pybids'
own SQLite database in ``WORK/pybids_index/<digest>/``, where the digest covers the dataset's
path, pybids' version, the folders left out, and the relative name, size and modification time
of every file pybids indexes: a file added, removed or rewritten gives another digest, hence a
fresh index.  Nothing is ever written into the dataset.  The few most recently used indexes are
kept (several datasets or states may share a work folder).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import bids
from bids import BIDSLayout

LOGGER = logging.getLogger("hermesflow")

INDEX_FOLDER = "pybids_index"
# pybids' file name inside the folder given as ``database_path``.
DATABASE_NAME = "layout_index.sqlite"
KEEP = 4


def listing_digest(root: Path, ignore: Sequence[str]) -> str:
    """A digest of what pybids would index in ``root``: relative names, sizes, mtimes.

    Top-level folders named in ``ignore`` and dot files and folders (which pybids never
    indexes) are skipped, so writing derivatives does not invalidate the index.
    """
    digest = hashlib.sha256(f"{root}\0{bids.__version__}\0{sorted(ignore)}".encode())
    for folder, subfolders, files in os.walk(root, followlinks=True):
        relative = os.path.relpath(folder, root)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(".")
                               and not (relative == "." and name in ignore))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:  # a dangling link (e.g. an annexed file not fetched) is indexed too
                stat = os.lstat(path)
            digest.update(f"{relative}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def reused_layout(root: Path, folder: Path, ignore: Sequence[str],
                  build: Callable[[], tuple[BIDSLayout, bool]]) -> BIDSLayout:
    """The layout of ``root`` from the index saved in ``folder``, else ``build()`` saved there.

    ``build`` returns the layout and whether it may be saved (an index made without some
    unreadable sidecar is not: the run must name that sidecar again next time).
    """
    try:
        digest = listing_digest(root, ignore)
    except OSError:  # a file vanished while listed: the dataset is changing, index it now
        return build()[0]
    saved = folder / digest
    if (saved / DATABASE_NAME).is_file():
        try:
            layout = BIDSLayout(str(root), database_path=str(saved))
            os.utime(saved)  # recently used: pruned last
            return layout
        except Exception as err:  # noqa: BLE001 - a damaged saved index is rebuilt, never fatal
            LOGGER.debug("pybids index %s unusable (%s): indexing again", saved, err)
            shutil.rmtree(saved, ignore_errors=True)
    layout, keep = build()
    if keep:
        _save(layout, folder, digest)
    return layout


def _save(layout: BIDSLayout, folder: Path, digest: str) -> None:
    """Save the index under ``folder/digest`` in one rename (a concurrent run saving the same
    index first wins; its copy is as good), then drop the least recently used ones."""
    partial = folder / f".{digest}.{os.getpid()}.partial"
    try:
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        # In-memory index stays in use here; the file is for the next run.
        layout.save(str(partial), replace_connection=False)
        os.replace(partial, folder / digest)
    except OSError as err:
        LOGGER.debug("pybids index not saved in %s: %s", folder, err)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    try:
        saved = sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                       key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:  # the folder is gone, or a concurrent run pruned an entry meanwhile
        return
    for old in saved[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
