"""A participant run repeated with nothing changed is answered from a record, in milliseconds.

Nipype's cache makes such a rerun compute nothing, but it still pays for the imports (nipype,
pybids, nilearn), the dataset index, the up-front checks, the graph and its sinks: seconds per
run, for outputs that come out byte-identical.  After a participant run that completed every
session (exit status 0), :func:`write_record` keeps, in the work folder, a stamp of what the
outputs depend on; :func:`unchanged_since` compares a new run with it before anything heavy is
imported:

* the settings: the whole configuration as resolved from the flags and the config file
  (verbosity aside), the working directory (relative paths) and the environment variables the
  atlases and templates are read from;
* the inputs: every file's path, size and modification time under BIDS_DIR and the fMRIPrep
  folder (:func:`~hermesflow.bids.validate.tree_stamp`, the test Nipype's own cache makes of
  its input files), and of the atlas and filter files;
* the outputs: the same stamp of OUTPUT_DIR (its ``logs``, ``group`` and index page aside,
  which other runs rewrite), so an output deleted or edited brings the run back;
* the code: the hermesflow package's files and the installed packages' folders.

Any difference, a record missing or unreadable, or another run holding OUTPUT_DIR (its lock
record) means a normal run.  A run that starts removes the record first, so a run cut short
leaves none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import site
import sys
from collections.abc import Iterable
from pathlib import Path

import hermesflow
from hermesflow.bids.validate import tree_stamp
from hermesflow.config import Config

RECORD_NAME = "hermesflow_participant_record.json"
# Rewritten by other runs (group level, index) or by this run's own lock: not outputs of it.
_NOT_OUTPUTS = ("logs", "group", "index.html")
_ENVIRONMENT = ("FSLDIR", "TEMPLATEFLOW_HOME", "HERMESFLOW_TEMPLATE")


def record_path(config: Config) -> Path:
    """Where the record of the last complete participant run lives (the work folder)."""
    return Path(config.execution.work_dir) / RECORD_NAME


def _settings(config: Config) -> str:
    resolved = dataclasses.asdict(config)
    resolved["execution"].pop("verbose", None)
    resolved["environment"] = {name: os.environ.get(name) for name in _ENVIRONMENT}
    resolved["cwd"] = os.getcwd()
    resolved["version"] = hermesflow.__version__
    resolved["python"] = sys.executable
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_stamps(files: Iterable[str | Path]) -> list[list]:
    stamps = []
    for file in sorted({str(f) for f in files}):
        try:
            info = os.stat(file)
            stamps.append([file, info.st_size, info.st_mtime_ns])
        except OSError:
            stamps.append([file, None, None])
    return stamps


def _code_stamp() -> str:
    """The package's own files, and the folders packages are installed in (an install or an
    upgrade adds or renames entries there, which changes the folder's time)."""
    folders = [p for p in {*site.getsitepackages(), site.getusersitepackages()}
               if os.path.isdir(p)]
    package = Path(hermesflow.__file__).parent
    # Compiled files come and go with the interpreter's caching: the sources are what count.
    sources = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    stamps = [f"{f}:{size}:{mtime}" for f, size, mtime in _file_stamps(sources)]
    stamps += [f"{p}:{os.stat(p).st_mtime_ns}" for p in sorted(folders)]
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()


def _trees(config: Config) -> dict[str, str]:
    ex, wf = config.execution, config.workflow
    trees = {"bids": tree_stamp(ex.bids_dir),
             "outputs": tree_stamp(ex.output_dir, skip=_NOT_OUTPUTS)}
    if wf.preproc == "existing" and wf.fmriprep_dir:
        inside = Path(wf.fmriprep_dir).resolve().is_relative_to(Path(ex.bids_dir).resolve())
        if not inside:
            trees["fmriprep"] = tree_stamp(wf.fmriprep_dir)
    return trees


def _state(config: Config, files: Iterable[str | Path]) -> dict:
    return {"settings": _settings(config), "code": _code_stamp(), "trees": _trees(config),
            "files": _file_stamps(files)}


def _other_run_holds(output_dir: str) -> bool:
    # The lock's records (cli/lock.py): a live or crashed run may be rewriting the outputs.
    from hermesflow.cli.lock import RECORD_PREFIX

    logs = Path(output_dir) / "logs"
    return logs.is_dir() and any(logs.glob(f"{RECORD_PREFIX}*.json"))


def unchanged_since(config: Config) -> str | None:
    """When the last complete participant run of this work folder started, if nothing its
    outputs depend on has changed since (see the module's description); else None."""
    try:
        record = json.loads(record_path(config).read_text())
        files = [entry[0] for entry in record["state"]["files"]]
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return None
    if _other_run_holds(config.execution.output_dir):
        return None
    if _state(config, files) != record["state"]:
        return None
    return str(record.get("start", "?"))


def forget_record(config: Config) -> None:
    """Remove the record before a run changes anything (a run cut short leaves none)."""
    record_path(config).unlink(missing_ok=True)


def write_record(config: Config, *, start: str, files: Iterable[str | Path]) -> Path:
    """Record a participant run that completed every session.

    Parameters
    ----------
    config
        The configuration as resolved from the flags, before the atlases' paths were resolved
        and checked (what :func:`unchanged_since` is given next time).
    start
        When the run started (shown when a later run is answered from the record).
    files
        Input files outside BIDS_DIR the run read: atlases, the filter file.
    """
    from hermesflow.derivatives.writing import write_json

    return write_json(record_path(config), {"start": start, "state": _state(config, files)})
