"""Tissue masks on the output grid, from the template's priors, for the confound signals.

The outputs are in MNI152NLin2009cAsym, so the template's tissue priors need no transform,
only resampling to the BOLD grid.  nilearn ships grey- and white-matter priors of the
MNI152 2009 template offline; CSF is what the brain mask holds beyond them (ventricles,
sulci).  As fMRIPrep does, the masks are thresholded and eroded, so that partial volume with
grey matter stays out of the noise signals.
"""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
from scipy import ndimage

# Few voxels make a noisy mean; below this an eroded mask falls back to the uneroded one.
_MIN_VOXELS = 10


def tissue_priors(grid: nib.Nifti1Image) -> dict[str, np.ndarray]:
    """Probabilities of ``white_matter`` and ``csf`` on the 3D image ``grid``."""
    from nilearn.datasets import load_mni152_gm_template, load_mni152_wm_template
    from nilearn.image import resample_to_img

    from hermesflow.preproc.native.brain import brain_mask_of
    from hermesflow.preproc.native.resample import template_image

    target = grid
    voxel = float(min(target.header.get_zooms()[:3]))

    def on_grid(img) -> np.ndarray:
        # Linear on masks on purpose: the fraction of each coarse voxel inside is the prior.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return np.asarray(resample_to_img(img, target, interpolation="continuous",
                                              force_resample=True, copy_header=True).dataobj,
                              np.float32)

    resolution = 1 if voxel < 2 else 2
    grey = np.clip(on_grid(load_mni152_gm_template(resolution=resolution)), 0, 1)
    white = np.clip(on_grid(load_mni152_wm_template(resolution=resolution)), 0, 1)
    template = template_image(max(1.0, min(voxel, 2.0)))
    brain = on_grid(nib.Nifti1Image(brain_mask_of(np.asarray(template.dataobj)).astype(
        np.float32), template.affine))
    return {"white_matter": white, "csf": np.clip(brain - grey - white, 0, 1)}


def tissue_masks(priors: dict[str, np.ndarray], brain: np.ndarray,
                 threshold: float = 0.9) -> dict[str, np.ndarray]:
    """Each prior above ``threshold`` (looser if empty), inside ``brain``, eroded once."""
    masks = {}
    for name, prior in priors.items():
        mask = np.zeros_like(brain, bool)
        for cut in (threshold, 0.7, 0.5):
            mask = (prior >= cut) & brain
            if mask.sum() >= _MIN_VOXELS:
                break
        eroded = ndimage.binary_erosion(mask)
        masks[name] = eroded if eroded.sum() >= _MIN_VOXELS else mask
    return masks
