"""What the participant level certified: one manifest per session and atlas, beside its outputs.

A participant run writes each session's manifest when it starts (status ``running``: the
inputs, the hash of the settings that shape the outputs, the dataset, the run) and hashes the
inputs in the background; the session sink completes it last (the inputs' and the outputs'
hashes, status ``complete``), atomically.  A session excluded by the up-front checks gets
status ``failed``.  The group level reads only tables whose manifest is complete, whose files
still have the hashes certified, whose inputs are still those of BIDS_DIR, and whose settings
are those of the latest participant run; any other table is refused with its reason
(:func:`select_certified`), so a table cut mid-number, the old table of a session whose rerun
failed, or one copied from another trial never enters a model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hermesflow.derivatives.writing import write_json

MANIFEST_SUFFIX = "_manifest.json"
TABLE_SUFFIX = "_roimeasures.tsv"
RUNNING, FAILED, COMPLETE = "running", "failed", "complete"
# Not compared: paths (moving the preprocessed data changes no number) and the atlases (their
# label is in every table's name; adding one changes no other table).
_NOT_SETTINGS = ("fmriprep_dir", "bids_filter_file", "atlas")


def manifest_path(roi_table: str | Path) -> Path:
    """The manifest of a session's ROI table (same entities, suffix ``manifest.json``)."""
    roi_table = Path(roi_table)
    return roi_table.with_name(roi_table.name.removesuffix(TABLE_SUFFIX) + MANIFEST_SUFFIX)


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class HashCache:
    """:func:`file_hash` remembered per file by its size, modification time and inode, in a
    JSON file (the work folder's): a run that starts re-hashes only the inputs that changed.

    The same test Nipype's cache and the run record (:mod:`hermesflow.cli.rerun`) make of
    their inputs; a file rewritten in place with the same size within the clock's resolution
    would pass for unchanged, as it does for them.  Call :meth:`save` once done.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._known = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._known = {}
        self._changed = False

    def _stamp(self, file: str | Path) -> tuple[str, list[int], str | None]:
        """The file's key, its stamp now, and its digest if that stamp is known."""
        info = os.stat(file)
        stamp = [info.st_size, info.st_mtime_ns, info.st_ino]
        key = os.path.abspath(file)
        known = self._known.get(key)
        return key, stamp, (known[3] if known is not None and known[:3] == stamp else None)

    def known(self, file: str | Path) -> str | None:
        """The file's digest if its stamp is the one remembered, else None (nothing read)."""
        return self._stamp(file)[2]

    def __call__(self, file: str | Path) -> str:
        key, stamp, digest = self._stamp(file)
        if digest is None:
            digest = file_hash(file)
            self._known[key] = [*stamp, digest]
            self._changed = True
        return digest

    def save(self) -> None:
        if self._changed:
            write_json(self.path, self._known)
            self._changed = False


class InputHashes:
    """A run's input digests, computed on one background thread from the moment its
    manifests are started: the graph does not wait for them (a first run at 2 mm read 1.8 GB
    of inputs for 6 participants before its first node; a cluster run would read every
    session's before its first job).  Each session's sink takes its own when it certifies
    the session (:func:`complete_session`), waiting only if they are not done yet.

    Use it as a context manager: while the block runs it is the process's source of input
    digests; on the way out the hashing stops and the cache is saved.
    """

    def __init__(self, cache: HashCache, files: Iterable[str | Path]) -> None:
        self._cache = cache
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="hermesflow-input-hashes")
        # One thread: the cache is not shared between threads, and hashing runs beside the
        # nodes (hashlib and reads release the GIL).
        self._digests = {file: self._pool.submit(cache, file)
                         for file in dict.fromkeys(map(str, files))}

    def __call__(self, file: str | Path) -> str:
        known = self._digests.get(str(file))
        return known.result() if known is not None else file_hash(file)

    def __enter__(self) -> InputHashes:
        global _RUNNING
        _RUNNING = self
        return self

    def __exit__(self, *exc) -> None:
        global _RUNNING
        _RUNNING = None
        self._pool.shutdown(cancel_futures=True)
        self._cache.save()


# The input digests of the participant run in progress in this process (None: none).
_RUNNING: InputHashes | None = None


def settings_hash(workflow: Mapping) -> str:
    """SHA-256 of the per-session settings (the config's ``workflow`` section, paths aside)."""
    chosen = {k: v for k, v in sorted(workflow.items()) if k not in _NOT_SETTINGS}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()


def session_input_files(bids_dir: str | Path, subject: str, session: str, task: str,
                        fmriprep_dir: str | Path | None = None) -> list[Path]:
    """The files a session's numbers come from: its raw task runs (BOLD, sidecars, events) and
    lesion masks, and the preprocessed runs of the task when they are an input of the run."""
    where = f"sub-{subject}/ses-{session}"
    patterns = [f"{where}/func/*_task-{task}_*", f"{where}/anat/*label-lesion*"]
    roots = [Path(bids_dir)] + ([Path(fmriprep_dir)] if fmriprep_dir else [])
    found = {p for root in roots for pattern in patterns for p in root.glob(pattern)
             if p.is_file()}
    return sorted(found)


def start_session(path: str | Path, *, inputs: Iterable[str | Path], settings: str,
                  bids_dir: str | Path, run: Mapping, status: str = RUNNING,
                  reason: str = "", hasher=file_hash) -> Path:
    """Write a session's manifest as the run begins (``running``) or is refused (``failed``).

    ``hasher`` gives each input's SHA-256, or None for a digest still being computed
    (:class:`InputHashes`): :func:`complete_session` fills it in."""
    return write_json(path, {
        "status": status, "reason": reason, "bids_dir": str(bids_dir), "settings": settings,
        "run": dict(run), "inputs": {str(p): hasher(p) for p in inputs}, "outputs": {},
    })


def complete_session(path: str | Path, outputs: Mapping[str, str | Path]) -> Path:
    """Certify a session's outputs: their hashes and status ``complete``, written last.

    Inputs whose digest was left pending get it now: from the run's :class:`InputHashes` in
    this process, else read here (a sink run in a cluster job).  Without a manifest started
    by a participant run (a sink called on its own), the manifest records no inputs and no
    settings, and the group level will not trust it.
    """
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        manifest = {"bids_dir": "", "settings": "", "run": {}, "inputs": {}}
    digest = _RUNNING or file_hash
    manifest["inputs"] = {p: known if known is not None else digest(p)
                          for p, known in manifest.get("inputs", {}).items()}
    manifest.update(status=COMPLETE, reason="",
                    # Relative to the manifest: OUTPUT_DIR may be moved as a whole.
                    outputs={key: {"path": os.path.relpath(p, path.parent),
                                   "sha256": file_hash(p)} for key, p in outputs.items()})
    return write_json(path, manifest)


@dataclass(frozen=True)
class Refused:
    """A table the group level did not read, and why."""

    table: str
    reason: str

    @property
    def session(self) -> tuple[str, str]:
        name = Path(self.table).name.split("_")
        return name[0], name[1]


def _read(path: Path) -> dict | None:
    try:
        manifest = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _problem(manifest: dict | None, where: Path, bids_dir: Path, latest: str | None
             ) -> str | None:
    if manifest is None:
        return "no manifest (not certified by a participant run)"
    status = manifest.get("status")
    if status != COMPLETE:
        why = f": {manifest['reason']}" if manifest.get("reason") else ""
        return f"status '{status}' (the last participant run did not complete it{why})"
    if not manifest.get("inputs") or not manifest.get("settings"):
        return "manifest records no inputs (not written by a participant run)"
    for output in manifest.get("outputs", {}).values():
        path = where / output["path"]
        if not path.is_file() or file_hash(path) != output["sha256"]:
            return f"{path.name} changed after it was certified (truncated or edited)"
    made = Path(manifest.get("bids_dir", ""))
    # Raw inputs are looked up in this run's BIDS_DIR: a moved dataset still matches, another
    # trial's files (even where they still lie) do not.
    changed = [p for p, digest in manifest["inputs"].items()
               if not _here(p, made, bids_dir).is_file()
               or file_hash(_here(p, made, bids_dir)) != digest]
    if changed:
        if made.resolve() != bids_dir.resolve():
            return f"made from another dataset ({made}), not from BIDS_DIR"
        return f"stale: its input {Path(changed[0]).name} changed since"
    if latest is not None and manifest["settings"] != latest:
        started = manifest.get("run", {}).get("start", "?")
        return f"stale: made with other settings (run of {started}) than the latest run"
    return None


def _here(path: str, made: Path, bids_dir: Path) -> Path:
    try:
        return bids_dir / Path(path).relative_to(made)
    except ValueError:
        return Path(path)


def select_certified(tables: Iterable[str | Path], bids_dir: str | Path
                     ) -> tuple[list[str], list[Refused]]:
    """The tables the group may read, and those refused with their reason.

    The settings of reference are those of the most recently started run among the complete
    manifests: tables made with other settings are from an older configuration.
    """
    manifests = {str(t): _read(manifest_path(t)) for t in tables}
    complete = [m for m in manifests.values() if m and m.get("status") == COMPLETE
                and m.get("settings")]
    latest = max(complete, key=lambda m: str(m.get("run", {}).get("start", "")),
                 default={}).get("settings")
    certified, refused = [], []
    for table, manifest in manifests.items():
        problem = _problem(manifest, Path(table).parent, Path(bids_dir), latest)
        if problem is None:
            certified.append(table)
        else:
            refused.append(Refused(table, problem))
    return certified, refused


def refused_table(refused: Iterable[Refused]) -> pd.DataFrame:
    """The refused tables as a DataFrame (participant_id, session_id, table, reason)."""
    rows = [{"participant_id": r.session[0], "session_id": r.session[1],
             "table": Path(r.table).name, "reason": r.reason} for r in refused]
    return pd.DataFrame(rows, columns=["participant_id", "session_id", "table", "reason"])
