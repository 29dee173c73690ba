"""What every atlas source gives: an :class:`Atlas`, and its regions as masks on any grid.

An :class:`Atlas` is a probabilistic image (one volume per region and hemisphere, values in
percent) or a label image, plus a table saying which volume or label is which
``(roi, hemisphere)``.  The sources (one module each) only load; :func:`roi_masks` does the
rest the same way for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nilearn.image import resample_to_img


@dataclass(frozen=True)
class Atlas:
    """A probabilistic or label atlas reduced to the regions hermesflow reads.

    Attributes
    ----------
    name : str
        Short name, used in output file names (``atlas-<name>``).
    image : nibabel.Nifti1Image
        4D probabilistic maps (percent), one volume per entry of ``regions``; or a 3D label image.
    regions : dict
        ``(roi, hemi) -> volume index`` (probabilistic) or ``-> label value`` (dseg).
    kind : str
        ``"probabilistic"`` or ``"dseg"``.
    source : str
        Where the file came from, for provenance.
    """

    name: str
    image: nib.Nifti1Image
    regions: dict[tuple[str, str], int]
    kind: str
    source: str


def roi_masks(
    atlas: Atlas, target: nib.Nifti1Image, threshold: float = 25.0
) -> dict[tuple[str, str], np.ndarray]:
    """Binary masks of each ``(roi, hemi)`` on the grid of ``target``.

    Probabilistic maps are resampled (linear) to the target grid, thresholded at
    ``threshold`` percent, and each voxel goes to the region most likely there, so that
    neighbouring regions (4a and 4p) never share a voxel.  Label images are resampled
    nearest-neighbour.
    """
    target3d = target if target.ndim == 3 else nib.Nifti1Image(
        np.zeros(target.shape[:3], np.uint8), target.affine
    )
    keys = list(atlas.regions)
    if atlas.kind == "probabilistic":
        resampled = resample_to_img(
            atlas.image, target3d, interpolation="linear", force_resample=True,
            copy_header=True,
        )
        prob = np.asarray(resampled.dataobj, dtype=np.float32)
        stack = np.stack([prob[..., atlas.regions[key]] for key in keys], axis=-1)
        winner = np.argmax(stack, axis=-1)
        above = stack.max(axis=-1) >= threshold
        return {key: above & (winner == i) for i, key in enumerate(keys)}
    resampled = resample_to_img(
        atlas.image, target3d, interpolation="nearest", force_resample=True, copy_header=True
    )
    labels = np.asarray(resampled.dataobj)
    return {key: labels == atlas.regions[key] for key in keys}
