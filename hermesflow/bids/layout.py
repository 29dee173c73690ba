"""Queries of the raw BIDS dataset (pybids) and the checks every input gets before a run.

Every problem becomes an :class:`~hermesflow.errors.InputError` naming the file and the fix;
checks that concern one session are collected so that the other sessions can still run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
from bids import BIDSLayout
from bids.layout import BIDSLayoutIndexer

from hermesflow.errors import InputError

REQUIRED_PARTICIPANT_COLUMNS = ("participant_id", "arm", "treated")


@dataclass(frozen=True)
class SessionInputs:
    """The raw files of one subject x session that the pipeline reads."""

    subject: str
    session: str
    bold: str
    events: str
    t_r: float


@lru_cache(maxsize=8)
def load_layout(bids_dir: str) -> BIDSLayout:
    """Index the raw dataset (derivatives and sourcedata are not indexed)."""
    root = Path(bids_dir)
    if not (root / "dataset_description.json").exists():
        raise InputError(root / "dataset_description.json", "not a BIDS dataset (file missing)",
                         "point BIDS_DIR at the dataset's top folder")
    indexer = BIDSLayoutIndexer(validate=False, ignore=["derivatives", "sourcedata", "code",
                                                        "phenotype", "work"])
    return BIDSLayout(str(root), indexer=indexer)


def _strip(label: str, prefix: str) -> str:
    return label[len(prefix):] if label.startswith(prefix) else label


def query_sessions(
    bids_dir: str,
    task: str,
    participant_label: list[str] | None = None,
    session_label: list[str] | None = None,
) -> list[tuple[str, str]]:
    """``(subject, session)`` pairs that have a BOLD run of ``task``, sorted.

    Labels may be given with or without their ``sub-`` / ``ses-`` prefix.  A label that
    matches nothing is an error naming the dataset and the labels it has.
    """
    layout = load_layout(str(bids_dir))
    subjects = layout.get_subjects(task=task, suffix="bold")
    if not subjects:
        raise InputError(bids_dir, f"no BOLD runs of task '{task}'",
                         f"check --task (tasks here: {', '.join(layout.get_tasks()) or 'none'})")
    wanted_subjects = [_strip(x, "sub-") for x in participant_label or []]
    unknown = sorted(set(wanted_subjects) - set(subjects))
    if unknown:
        raise InputError(bids_dir, f"unknown participant label(s) {', '.join(unknown)}",
                         f"use labels present in the dataset: {', '.join(sorted(subjects))}")
    wanted_sessions = [_strip(x, "ses-") for x in session_label or []]
    known_sessions = layout.get_sessions(task=task, suffix="bold")
    unknown = sorted(set(wanted_sessions) - set(known_sessions))
    if unknown:
        raise InputError(bids_dir, f"unknown session label(s) {', '.join(unknown)}",
                         f"use labels present in the dataset: {', '.join(sorted(known_sessions))}")
    pairs = []
    for subject in wanted_subjects or subjects:
        for session in layout.get_sessions(subject=subject, task=task, suffix="bold"):
            if not wanted_sessions or session in wanted_sessions:
                pairs.append((subject, session))
    return sorted(pairs)


def session_inputs(bids_dir: str, subject: str, session: str, task: str) -> SessionInputs:
    """Find and check the BOLD run and events of one session."""
    layout = load_layout(str(bids_dir))
    bolds = layout.get(subject=subject, session=session, task=task, suffix="bold",
                       extension=[".nii", ".nii.gz"])
    where = Path(bids_dir) / f"sub-{subject}" / f"ses-{session}" / "func"
    if not bolds:
        raise InputError(where, f"no BOLD run of task '{task}'", "add the run or drop the session")
    if len(bolds) > 1:
        raise InputError(where, f"{len(bolds)} BOLD runs of task '{task}'",
                         "select one with --bids-filter-file or keep one run per session")
    bold = bolds[0]
    t_r = bold.get_metadata().get("RepetitionTime")
    if not t_r:
        raise InputError(bold.path, "sidecar has no RepetitionTime", "add it to the JSON sidecar")
    events = Path(bold.path.replace("_bold.nii.gz", "_events.tsv").replace("_bold.nii",
                                                                         "_events.tsv"))
    check_events(events)
    return SessionInputs(subject, session, bold.path, str(events), float(t_r))


def check_events(path: Path, condition: str = "move") -> pd.DataFrame:
    """Read an events file and check the columns and the condition the GLM needs."""
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
    if condition not in set(events["trial_type"]):
        raise InputError(path, f"no '{condition}' blocks in trial_type",
                         f"label the movement blocks '{condition}'")
    return events


def read_participants(bids_dir: str | Path) -> pd.DataFrame:
    """participants.tsv with the columns the group models need, checked."""
    path = Path(bids_dir) / "participants.tsv"
    if not path.exists():
        raise InputError(path, "file missing", "write participants.tsv with participant_id, "
                         "arm and treated columns")
    table = pd.read_csv(path, sep="\t", dtype={"participant_id": str}, na_values=["n/a"])
    missing = [c for c in REQUIRED_PARTICIPANT_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks column(s) {', '.join(missing)}",
                         "add arm (randomised) and treated (yes/no) columns")
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
