"""Gather one session's inputs: raw events and TR, the preprocessed files, the lesion side."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.bids.layout import read_participants, session_inputs
from hermesflow.errors import InputError
from hermesflow.preproc.collect import collect_session


def gather_session(bids_dir: str, fmriprep_dir: str, subject: str, session: str, task: str,
                   space: str) -> dict:
    """Everything the GLM and ROI stages need for one session, checked."""
    raw = session_inputs(bids_dir, subject, session, task)
    prep = collect_session(fmriprep_dir, subject, session, t_r=raw.t_r, task=task, space=space)
    participants = read_participants(bids_dir).set_index("participant_id")
    side = None
    if "lesion_side" in participants.columns and f"sub-{subject}" in participants.index:
        value = participants.loc[f"sub-{subject}", "lesion_side"]
        side = None if pd.isna(value) else str(value).upper()
    if side is None:
        if prep.lesion_mask is None:
            raise InputError(Path(bids_dir) / "participants.tsv",
                             f"sub-{subject} has no lesion_side and no lesion mask",
                             "add lesion_side (L/R) or a lesion mask")
        side = lesion_side_from_mask(prep.lesion_mask)
    return {
        "bold": prep.bold, "mask": prep.mask, "confounds": prep.confounds,
        "lesion_mask": prep.lesion_mask, "events": raw.events, "t_r": raw.t_r,
        "lesion_side": side,
    }


def lesion_side_from_mask(lesion_mask: str | Path) -> str:
    """``L`` or ``R``: the hemisphere (world x < 0 is left) holding most lesion voxels."""
    img = nib.load(lesion_mask)
    ijk = np.argwhere(np.asarray(img.dataobj) > 0)
    if len(ijk) == 0:
        raise InputError(lesion_mask, "lesion mask is empty",
                         "give lesion_side (L/R) in participants.tsv or fix the mask")
    x = nib.affines.apply_affine(img.affine, ijk)[:, 0]
    return "L" if (x < 0).sum() >= (x >= 0).sum() else "R"
