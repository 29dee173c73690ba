"""Carry a lesion mask drawn on the T1w into the BOLD's template space.

fMRIPrep never writes the lesion mask in template space; it writes the transforms it used
(``anat/sub-X[_ses-Y]_from-T1w_to-<template>_mode-image_xfm.h5``, a composite affine + SyN
warp, and ``from-orig_to-T1w`` where a session's T1w is not the anatomical reference).  The
raw mask goes through them, in one resampling, onto the grid of the preprocessed BOLD, with
nearest-neighbour interpolation so that a voxel is lesion or not, never a fraction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from hermesflow.derivatives.writing import write_nifti
from hermesflow.errors import InputError


def warp_lesion_to_template(lesion: str | Path, transforms: list[str] | tuple[str, ...],
                            reference: str | Path, out_file: str | Path) -> Path:
    """Resample ``lesion`` through ``transforms`` (ANTs order: applied last first) onto the
    grid of ``reference`` and write a 0/1 mask to ``out_file``.

    Raises
    ------
    InputError
        A transform is missing or unreadable, the mask is empty, or nothing of it lands on the
        reference grid (wrong transform or wrong space).
    """
    import ants

    for transform in transforms:
        if not Path(transform).is_file():
            raise InputError(transform, "transform file not found",
                             "point --fmriprep-dir at the fMRIPrep outputs of this participant")
    source = nib.load(str(lesion))
    n_source = int((np.asanyarray(source.dataobj) > 0).sum())
    if n_source == 0:
        raise InputError(lesion, "lesion mask is empty",
                         "draw the lesion (1 = lesion) or remove the file")
    ref = nib.load(str(reference))
    with tempfile.TemporaryDirectory(prefix="hermesflow-lesion-") as tmp:
        # Through files: ITK reads the NIfTI orientation itself (RAS vs LPS handled once).
        fixed = ants.image_read(str(write_nifti(Path(tmp) / "grid.nii.gz", nib.Nifti1Image(
            np.zeros(ref.shape[:3], np.float32), ref.affine))))
        moving = ants.image_read(str(write_nifti(Path(tmp) / "lesion.nii.gz", nib.Nifti1Image(
            (np.asanyarray(source.dataobj) > 0).astype(np.float32), source.affine))))
        try:
            warped = ants.apply_transforms(fixed, moving, list(transforms),
                                           interpolator="nearestNeighbor")
        except (RuntimeError, ValueError) as error:
            raise InputError(transforms[0], f"cannot be applied by ANTs ({error})",
                             "use the transforms fMRIPrep wrote for this participant") from None
        mask = warped.numpy() > 0.5
    if not mask.any():
        raise InputError(lesion, "no lesion voxel lands on the BOLD grid after the transforms",
                         "check that the mask is in the T1w's space and the transforms match")
    return write_nifti(out_file, nib.Nifti1Image(mask.astype(np.uint8), ref.affine))
