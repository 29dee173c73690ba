"""Gather one session's inputs: raw runs paired with preprocessed runs, lesion, lesion side."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.bids.anat import find_raw_lesion
from hermesflow.bids.filters import load_bids_filters, pybids_query, run_entities
from hermesflow.bids.layout import read_participants, session_inputs
from hermesflow.errors import InputError
from hermesflow.preproc.collect import collect_session
from hermesflow.preproc.lesion import warp_lesion_to_template

LOGGER = logging.getLogger("hermesflow")


def _pair_key(label: str) -> tuple[tuple[str, str], ...]:
    """A run label as comparable entities: ``run-01`` and ``run-1`` are one run."""
    pairs = []
    for part in label.split("_"):
        key, _, value = part.partition("-")
        pairs.append((key, str(int(value)) if value.isdigit() else value))
    return tuple(sorted(pairs))


def pair_runs(raw_runs: Sequence, prep_runs: Sequence, fmriprep_func: Path, *,
              filtered: bool) -> list[tuple]:
    """``(raw, preprocessed)`` run pairs, in run order.

    Raises
    ------
    InputError
        A raw run without its preprocessed run, or (when no filter chose the raw runs) a
        preprocessed run without its raw run; the message names the run.
    """
    raw_by_key = {_pair_key(run.label): run for run in raw_runs}
    prep_by_key = {_pair_key(run.label): run for run in prep_runs}
    for key, run in raw_by_key.items():
        if key not in prep_by_key:
            raise InputError(fmriprep_func, f"no preprocessed run for raw {run.label} "
                             f"({Path(run.bold).name})", "rerun fMRIPrep on this run or leave "
                             "it out with --bids-filter-file")
    extra = [run.label for key, run in prep_by_key.items() if key not in raw_by_key]
    if extra and not filtered:
        raise InputError(fmriprep_func, f"preprocessed {', '.join(extra)} has no raw run of "
                         "the task in BIDS_DIR", "check --fmriprep-dir and --task, or select "
                         "runs with --bids-filter-file")
    return [(raw_by_key[key], prep_by_key[key]) for key in sorted(raw_by_key)]


def gather_session(bids_dir: str, fmriprep_dir: str, subject: str, session: str, task: str,
                   space: str, *, bids_filter_file: str | None = None,
                   conditions: Sequence[str] = ("move",), need_confounds: bool = True) -> dict:
    """Everything the GLM and ROI stages need for one session, checked.

    Returns
    -------
    dict
        Per run, in run order (lists): ``run_labels``, ``bold``, ``mask``, ``confounds``
        (``""`` when the model has none and the table is absent), ``events``, ``t_r``,
        ``sidecar`` (the preprocessed BOLD's JSON, ``""`` if absent).  Per session:
        ``lesion_mask`` (already in the BOLD's space, or None), ``raw_lesion`` and
        ``lesion_transforms`` (when fMRIPrep's transforms must carry the raw mask there),
        ``lesion_side``.
    """
    filters = load_bids_filters(bids_filter_file or None)
    raw = session_inputs(bids_dir, subject, session, task, bold_filters=pybids_query(filters)
                         or None, conditions=tuple(conditions))
    prep = collect_session(fmriprep_dir, subject, session, t_r=raw.runs[0].t_r, task=task,
                           space=space, run_filter=run_entities(filters),
                           require_confounds=need_confounds)
    func = Path(fmriprep_dir) / f"sub-{subject}" / f"ses-{session}" / "func"
    pairs = pair_runs(raw.runs, prep.runs, func, filtered="bold" in filters)
    raw_lesion, transforms = None, []
    if prep.lesion_mask is None:
        found = find_raw_lesion(bids_dir, subject, session)
        if found is not None and prep.lesion_transforms:
            raw_lesion, transforms = str(found), list(prep.lesion_transforms)
        elif found is not None:
            LOGGER.warning("sub-%s ses-%s: %s is not used: no fMRIPrep transform to space %s "
                           "was found, so lesion voxels stay in the ROIs", subject, session,
                           found, prep.space)
    side = _participant_lesion_side(bids_dir, subject)
    if side is None:
        lesion = prep.lesion_mask or raw_lesion
        if lesion is None:
            raise InputError(Path(bids_dir) / "participants.tsv",
                             f"sub-{subject} has no lesion_side and no lesion mask",
                             "add lesion_side (L/R) or a lesion mask")
        side = lesion_side_from_mask(lesion)
    return {
        "run_labels": [p.label for _, p in pairs],
        "bold": [p.bold for _, p in pairs], "mask": [p.mask for _, p in pairs],
        "confounds": [p.confounds or "" for _, p in pairs],
        "events": [r.events for r, _ in pairs], "t_r": [r.t_r for r, _ in pairs],
        "sidecar": [p.sidecar or "" for _, p in pairs],
        "lesion_mask": prep.lesion_mask, "raw_lesion": raw_lesion,
        "lesion_transforms": transforms, "lesion_side": side,
    }


def _participant_lesion_side(bids_dir: str, subject: str) -> str | None:
    participants = read_participants(bids_dir).set_index("participant_id")
    if "lesion_side" in participants.columns and f"sub-{subject}" in participants.index:
        value = participants.loc[f"sub-{subject}", "lesion_side"]
        return None if pd.isna(value) else str(value).upper()
    return None


def lesion_on_bold_grid(lesion_mask: str | None, raw_lesion: str | None,
                        transforms: Sequence[str], reference: str, out_dir: str | Path
                        ) -> str | None:
    """The lesion mask on the BOLD's grid: the one given, or the raw one carried there through
    fMRIPrep's transforms (:func:`~hermesflow.preproc.lesion.warp_lesion_to_template`)."""
    if lesion_mask:
        return str(lesion_mask)
    if not raw_lesion or not transforms:
        return None
    name = re.sub(r"\.nii(\.gz)?$", "", Path(raw_lesion).name) + "_bold-grid.nii.gz"
    return str(warp_lesion_to_template(raw_lesion, list(transforms), reference,
                                       Path(out_dir) / name))


def lesion_side_from_mask(lesion_mask: str | Path) -> str:
    """``L`` or ``R``: the hemisphere (world x < 0 is left) holding most lesion voxels."""
    img = nib.load(lesion_mask)
    ijk = np.argwhere(np.asarray(img.dataobj) > 0)
    if len(ijk) == 0:
        raise InputError(lesion_mask, "lesion mask is empty",
                         "give lesion_side (L/R) in participants.tsv or fix the mask")
    x = nib.affines.apply_affine(img.affine, ijk)[:, 0]
    return "L" if (x < 0).sum() >= (x >= 0).sum() else "R"
