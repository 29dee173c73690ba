"""Up-front checks of the raw files native preprocessing reads: one line each, naming the file.

Run before any registration, so a bad header fails in a second, not after the motion
correction of every volume.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from hermesflow.bids.anat import NativeInputs
from hermesflow.errors import InputError

_REFIX = "fix the header's qform/sform or convert the scan from DICOM again"


def bold_sidecar(bids_dir: str | Path, bold: str | Path, task: str) -> dict:
    """The BOLD run's JSON metadata, merged over BIDS inheritance (top level first)."""
    bold = Path(bold)
    stem = bold.name.split(".nii")[0]
    parts = stem.split("_")
    subject = next(p for p in parts if p.startswith("sub-"))
    session = next((p for p in parts if p.startswith("ses-")), None)
    root = Path(bids_dir)
    candidates = [root / f"task-{task}_bold.json",
                  root / subject / f"{subject}_task-{task}_bold.json"]
    if session:
        candidates.append(root / subject / session / f"{subject}_{session}_task-{task}_bold.json")
    candidates.append(bold.with_name(f"{stem}.json"))
    merged: dict = {}
    for candidate in candidates:
        if candidate.exists():
            merged.update(json.loads(candidate.read_text()))
    return merged


def _check_affine(path: Path, img) -> None:
    matrix = np.asarray(img.affine, float)
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:3, :3])) < 1e-6:
        raise InputError(path, "degenerate affine (the voxel-to-world matrix is singular or "
                         "not finite)", _REFIX)


def check_inputs(inputs: NativeInputs, bids_dir: str | Path, task: str) -> dict:
    """Check the session's raw files; return the BOLD's sidecar metadata.

    Raises
    ------
    InputError
        A BOLD that is not 4D, no ``RepetitionTime``, a degenerate affine, or a lesion mask on
        another grid than its T1w.
    """
    images = {path: nib.load(str(path)) for path in (inputs.t1w, inputs.lesion, inputs.bold)}
    for path, img in images.items():
        _check_affine(Path(path), img)
    bold = images[inputs.bold]
    if bold.ndim != 4 or bold.shape[3] < 2:
        raise InputError(inputs.bold, f"{bold.ndim}D image of shape {bold.shape} where a 4D "
                         "BOLD series is expected", "give the whole run (x, y, z, time)")
    sidecar = bold_sidecar(bids_dir, inputs.bold, task)
    t_r = sidecar.get("RepetitionTime")
    if not isinstance(t_r, (int, float)) or t_r <= 0:
        raise InputError(inputs.bold, "no RepetitionTime in its JSON sidecar (nor an "
                         "inherited one)", f"add \"RepetitionTime\" (s) to task-{task}_bold.json")
    t1w, lesion = images[inputs.t1w], images[inputs.lesion]
    if lesion.shape[:3] != t1w.shape[:3] or not np.allclose(lesion.affine, t1w.affine,
                                                             atol=1e-3):
        raise InputError(inputs.lesion, f"lesion mask on another grid ({lesion.shape[:3]}) "
                         f"than its T1w ({t1w.shape[:3]}, or another affine)",
                         "resample the mask onto the T1w grid (nearest neighbour)")
    return sidecar
