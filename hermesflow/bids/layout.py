"""Queries of the raw BIDS dataset (pybids) and the checks every input gets before a run.

Every problem becomes an :class:`~hermesflow.errors.InputError` naming the file and the fix;
checks that concern one session are collected so that the other sessions can still run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from weakref import WeakKeyDictionary

import pandas as pd

from hermesflow.errors import InputError

if TYPE_CHECKING:
    from bids import BIDSLayout

REQUIRED_PARTICIPANT_COLUMNS = ("participant_id", "arm", "treated")


def only_run(runs):
    """The one run of a session; several are an error (a single-run reader must not pick)."""
    if len(runs) != 1:
        raise InputError(Path(runs[0].bold).parent, f"{len(runs)} runs where one was expected",
                         "select one with --bids-filter-file")
    return runs[0]


@dataclass(frozen=True)
class RawRun:
    """One raw BOLD run of a session (all its echoes), with its events and timing."""

    label: str
    bold: str
    events: str
    t_r: float
    n_echoes: int = 1
    slice_timing: tuple[float, ...] | None = None


@dataclass(frozen=True)
class SessionInputs:
    """The raw files of one subject x session that the pipeline reads."""

    subject: str
    session: str
    runs: tuple[RawRun, ...]

    @property
    def single_run(self) -> RawRun:
        return only_run(self.runs)

    @property
    def bold(self) -> str:
        return self.single_run.bold

    @property
    def events(self) -> str:
        return self.single_run.events

    @property
    def t_r(self) -> float:
        return self.single_run.t_r


# Folders where load_layout may keep each dataset's index (the run's work folder).
_INDEX_FOLDERS: dict[str, Path] = {}
# Never indexed: not raw data, or written by pipelines.
IGNORED_FOLDERS = ("derivatives", "sourcedata", "code", "phenotype", "work")


def keep_index_in(bids_dir: str, folder: str | Path) -> None:
    """Let :func:`load_layout` keep the index of ``bids_dir`` in ``folder`` (a work folder,
    never the dataset) and reuse it while the dataset's files are unchanged
    (:mod:`hermesflow.bids.index`).  Call before the first query of the dataset."""
    _INDEX_FOLDERS[str(bids_dir)] = Path(folder)


@lru_cache(maxsize=8)
def load_layout(bids_dir: str) -> BIDSLayout:
    """Index the raw dataset (derivatives and sourcedata are not indexed)."""
    root = Path(bids_dir)
    if not (root / "dataset_description.json").exists():
        raise InputError(root / "dataset_description.json", "not a BIDS dataset (file missing)",
                         "point BIDS_DIR at the dataset's top folder")
    _BAD_JSON[str(root)] = {}
    folder = _INDEX_FOLDERS.get(str(bids_dir))
    if folder is None:
        return _index(root)[0]
    from hermesflow.bids.index import reused_layout

    return reused_layout(root, folder, IGNORED_FOLDERS, lambda: _index(root))


def _index(root: Path) -> tuple[BIDSLayout, bool]:
    """pybids' index of ``root``, and whether every sidecar could be read."""
    # Imported here: the nodes that read events or participants (the GLM, the lesion) do not
    # need pybids, and a worker importing it spent 0.3 s on it.
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    ignore: list = list(IGNORED_FOLDERS)
    try:
        return BIDSLayout(str(root), indexer=BIDSLayoutIndexer(validate=False, ignore=ignore)), True
    except OSError:  # pybids stops at a sidecar that is not JSON: index without it
        for path in (p for p in root.rglob("*.json") if p.relative_to(root).parts[0]
                     not in ignore):
            try:
                json.loads(path.read_text())
            except ValueError as err:
                _BAD_JSON[str(root)][path] = str(err)
                ignore.append(str(path.relative_to(root)))
        layout = BIDSLayout(str(root), indexer=BIDSLayoutIndexer(validate=False, ignore=ignore))
        return layout, False


# Sidecars left out of the index as not JSON, per dataset; their sessions are refused.
_BAD_JSON: dict[str, dict[Path, str]] = {}

# pybids' answers, per layout: every session asks the same few queries of the whole dataset
# once instead of its own (a query costs milliseconds).  They live and die with the layout,
# so ``load_layout.cache_clear()`` forgets them too.
_ANSWERS: WeakKeyDictionary = WeakKeyDictionary()


def _answer(layout: BIDSLayout, key: tuple, compute: Callable[[], object]):
    answers = _ANSWERS.setdefault(layout, {})
    if key not in answers:
        answers[key] = compute()
    return answers[key]


def _query_key(query: dict) -> str:
    # Values may be lists or pybids' Query members: their repr is stable and distinct.
    return repr(sorted(query.items()))


class _Bold(NamedTuple):
    path: str
    entities: dict
    file: object  # pybids' BIDSFile, for its metadata


def _files_by_session(layout: BIDSLayout, query: dict) -> dict[tuple, list[_Bold]]:
    """The files one pybids query returns, by ``(subject, session)`` (None where absent)."""
    found: dict[tuple, list[_Bold]] = {}
    for file in layout.get(**query):
        entities = file.get_entities()
        found.setdefault((entities.get("subject"), entities.get("session")), []).append(
            _Bold(file.path, entities, file))
    return found


def _strip(label: str, prefix: str) -> str:
    return label[len(prefix):] if label.startswith(prefix) else label


def query_sessions(
    bids_dir: str,
    task: str,
    participant_label: list[str] | None = None,
    session_label: list[str] | None = None,
    bold_filters: dict | None = None,
) -> list[tuple[str, str]]:
    """``(subject, session)`` pairs that have a BOLD run of ``task``, sorted.

    Labels may be given with or without their ``sub-`` / ``ses-`` prefix.  A label that
    matches nothing is an error naming the dataset and the labels it has.
    """
    layout = load_layout(str(bids_dir))
    # One query for the whole selection; subjects and sessions are read off its files.
    query = {**(bold_filters or {}), "task": task, "suffix": "bold"}
    found = _answer(layout, ("files", _query_key(query)),
                    lambda: _files_by_session(layout, query))
    subjects = sorted({subject for subject, _ in found if subject is not None})
    if not subjects:
        raise InputError(bids_dir, f"no BOLD runs of task '{task}'",
                         f"check --task (tasks here: {', '.join(layout.get_tasks()) or 'none'})")
    wanted_subjects = [_strip(x, "sub-") for x in participant_label or []]
    unknown = sorted(set(wanted_subjects) - set(subjects))
    if unknown:
        raise InputError(bids_dir, f"unknown participant label(s) {', '.join(unknown)}",
                         f"use labels present in the dataset: {', '.join(sorted(subjects))}")
    wanted_sessions = [_strip(x, "ses-") for x in session_label or []]
    known_sessions = {session for _, session in found if session is not None}
    unknown = sorted(set(wanted_sessions) - known_sessions)
    if unknown:
        raise InputError(bids_dir, f"unknown session label(s) {', '.join(unknown)}",
                         f"use labels present in the dataset: {', '.join(sorted(known_sessions))}")
    pairs = []
    for subject in wanted_subjects or subjects:
        for session in {ses for sub, ses in found if sub == subject and ses is not None}:
            if not wanted_sessions or session in wanted_sessions:
                pairs.append((subject, session))
    return sorted(pairs)


def run_label(entities: dict) -> str:
    """A run's name from its identifying entities (``run-1``, ``acq-fast_run-2``), as the
    collector of preprocessed runs names them, so raw and preprocessed runs pair up."""
    skip = {"subject", "session", "task", "echo", "part", "suffix", "extension", "datatype"}
    parts = [f"{_SHORT.get(k, k)}-{v}" for k, v in sorted(
        ((_SHORT.get(k, k), v) for k, v in entities.items() if k not in skip))]
    return "_".join(parts) or "run-1"


_SHORT = {"acquisition": "acq", "ceagent": "ce", "reconstruction": "rec", "direction": "dir"}


def session_inputs(bids_dir: str, subject: str, session: str, task: str,
                   bold_filters: dict | None = None, condition: str = "move",
                   conditions: Sequence[str] | None = None) -> SessionInputs:
    """Find and check every BOLD run of ``task`` in one session, with its events.

    Echoes of one multi-echo run are one run (fMRIPrep combines them); ``bold_filters`` are
    pybids filters from ``--bids-filter-file`` (its ``bold`` query).  Every run's events must
    hold each of ``conditions`` (default: ``condition`` alone).
    """
    layout = load_layout(str(bids_dir))
    where = Path(bids_dir) / f"sub-{subject}" / f"ses-{session}" / "func"
    # The session's own subject and session override the filter's: one query of every
    # session's BOLD files serves them all.
    query = {key: value for key, value in (bold_filters or {}).items()
             if key not in ("subject", "session")}
    query.update(task=task, suffix="bold", extension=[".nii", ".nii.gz"])
    try:
        bolds = _answer(layout, ("files", _query_key(query)),
                        lambda: _files_by_session(layout, query)).get((subject, session), [])
    except (ValueError, TypeError) as err:
        raise InputError(where, f"the BIDS filter cannot be applied ({err})",
                         "fix the bold query of --bids-filter-file") from None
    if not bolds:
        raise InputError(where, f"no BOLD run of task '{task}'"
                         + (" matching --bids-filter-file" if bold_filters else ""),
                         "add the run or drop the session")
    grouped: dict[str, list] = {}
    for bold in bolds:
        grouped.setdefault(run_label(bold.entities), []).append(bold)
    runs = []
    for label, files in sorted(grouped.items()):
        files.sort(key=lambda f: int(f.entities.get("echo", 0) or 0))
        first = files[0]
        for bad, err in _BAD_JSON.get(str(bids_dir), {}).items():
            if bad.name.endswith("_bold.json") and bad.parent in Path(first.path).parents:
                raise InputError(bad, f"not valid JSON ({err})", "fix the JSON syntax")
        metadata = _answer(layout, ("metadata", first.path), first.file.get_metadata)
        t_r = metadata.get("RepetitionTime")
        if not t_r:
            raise InputError(first.path, "sidecar has no RepetitionTime",
                             "add it to the JSON sidecar")
        events = Path(re.sub(r"_(?:echo|part)-[^_]+", "",
                             re.sub(r"_bold\.nii(\.gz)?$", "_events.tsv", first.path)))
        _check_events_once(events, conditions or condition)
        timing = metadata.get("SliceTiming")
        runs.append(RawRun(label, first.path, str(events), float(t_r), len(files),
                           tuple(float(t) for t in timing) if timing else None))
    return SessionInputs(subject, session, tuple(runs))


def check_events(path: Path, condition: str | Sequence[str] = "move") -> pd.DataFrame:
    """Read an events file and check the columns and the conditions the GLM models.

    ``condition`` is one ``trial_type`` or several; each must have at least one block.
    """
    if not path.exists():
        raise InputError(path, "events file missing", "write onset/duration/trial_type blocks")
    events = pd.read_csv(path, sep="\t")
    missing = {"onset", "duration", "trial_type"} - set(events.columns)
    if missing:
        raise InputError(path, f"lacks column(s) {', '.join(sorted(missing))}",
                         "add onset, duration and trial_type columns")
    for column in ("onset", "duration"):
        if not pd.api.types.is_numeric_dtype(events[column]):
            raise InputError(path, f"column '{column}' holds non-numeric values",
                             "write seconds as numbers")
    wanted = [condition] if isinstance(condition, str) else list(condition)
    present = set(events["trial_type"].astype(str))
    for name in wanted:
        if name not in present:
            raise InputError(path, f"no '{name}' blocks in trial_type",
                             f"label the movement blocks '{name}'" if name == "move" else
                             f"label those blocks '{name}' or change [workflow] conditions "
                             f"(trial types here: {', '.join(sorted(present))})")
    return events


def _check_events_once(path: Path, condition: str | Sequence[str]) -> None:
    """:func:`check_events`, skipped for a file unchanged since it passed (each session's
    up-front check and its gathering node would read it again); keyed by size and mtime,
    as :func:`read_participants` is."""
    try:
        stat = path.stat()
    except OSError:
        check_events(path, condition)  # names the missing file
        return
    conditions = condition if isinstance(condition, str) else tuple(condition)
    _events_passed(str(path), stat.st_size, stat.st_mtime_ns, conditions)


@lru_cache(maxsize=4096)
def _events_passed(path: str, size: int, mtime_ns: int, condition: str | tuple) -> None:
    """Raises as :func:`check_events` does; a file that passes is remembered (exceptions are
    not cached, so a bad file is checked, and reported, every time)."""
    check_events(Path(path), condition)


def read_participants(bids_dir: str | Path) -> pd.DataFrame:
    """participants.tsv with the columns the group models need, checked."""
    path = Path(bids_dir) / "participants.tsv"
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise InputError(path, "file missing", "write participants.tsv with participant_id, "
                         "arm and treated columns") from None
    # Every session's gathering reads it: read once while the file is unchanged.
    return _participants(str(path), stat.st_size, stat.st_mtime_ns).copy()


@lru_cache(maxsize=4)
def _participants(path: str, size: int, mtime_ns: int) -> pd.DataFrame:
    """The checked table of ``path``; ``size`` and ``mtime_ns`` key the cache."""
    table = pd.read_csv(path, sep="\t", dtype={"participant_id": str}, na_values=["n/a"])
    missing = [c for c in REQUIRED_PARTICIPANT_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks column(s) {', '.join(missing)}",
                         "add arm (randomised) and treated (yes/no) columns")
    twice = sorted(set(table.loc[table["participant_id"].duplicated(), "participant_id"]))
    if twice:
        raise InputError(path, f"participant(s) {', '.join(twice)} have more than one row",
                         "keep one row per participant")
    bad = sorted(set(table["treated"].dropna().astype(str)) - {"yes", "no"})
    if bad:
        raise InputError(path, f"column 'treated' has value(s) {', '.join(bad)}",
                         "write yes or no")
    return table


def read_sessions(bids_dir: str | Path, subject: str) -> pd.DataFrame:
    """``sub-X_sessions.tsv`` (session_id, months, clinical scores)."""
    path = Path(bids_dir) / f"sub-{subject}" / f"sub-{subject}_sessions.tsv"
    if not path.exists():
        raise InputError(path, "file missing", "write session_id and months (and the scores)")
    table = pd.read_csv(path, sep="\t", na_values=["n/a"], dtype={"session_id": str})
    for column in ("session_id", "months"):
        if column not in table.columns:
            raise InputError(path, f"lacks column '{column}'", f"add a {column} column")
    table.insert(0, "participant_id", f"sub-{subject}")
    return table


def sidecar(path: str | Path) -> dict:
    """The JSON sidecar of a NIfTI file, or an empty dict."""
    name = str(path)
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    json_path = Path(name + ".json")
    return json.loads(json_path.read_text()) if json_path.exists() else {}
