"""Registrations: BOLD reference -> T1w (rigid) and T1w -> MNI152NLin2009cAsym, lesion masked.

Each step writes its ANTs transform files into the folder it is given and returns their paths
in the order :func:`ants.apply_transforms` takes them (fixed space first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hermesflow.derivatives.writing import write_nifti
from hermesflow.errors import ConfigError, HermesflowError
from hermesflow.preproc.native.resample import template_image

TRANSFORMS = ("Rigid", "Affine", "SyN")
# antsRegistration samples metric points at random; a fixed seed makes reruns (and cached
# partial reruns) give the same transforms.  antspyx 0.6 passes it as --random-seed from this
# module-level setting and offers no per-call argument.
RANDOM_SEED = 20261126
# T1w -> MNI is fitted on a grid of this voxel size whatever the T1w's: the SyN's levels then
# sit at fixed physical scales (8, 4 and 2 mm).  Its metric is the local cross-correlation
# fMRIPrep's SyN uses for T1w -> template, over a window of about CC_WINDOW_MM (fMRIPrep:
# radius 4 at 1 mm).  Measured with a 53 mL lesion reaching into M1
# (tests/test_native_lesion.py, 2 mm): mutual information (antspyx's default) left the ROI's
# centroid 0.42 / 0.22 mm off with / without the lesion masked; CC 0.14 / 5.8 mm -- CC follows
# local anatomy better, and it is what the lesion drags when it is not masked.  The 4 mm
# level is run for 10 iterations, not antspyx's 20: 0.14 against 0.15 mm, 19 s against 31 s.
FIT_GRID_MM = 2.0
CC_WINDOW_MM = 4.0
SYN_ITERATIONS = (40, 10, 0)


class RegistrationError(HermesflowError):
    """antspyx could not register two images."""


@dataclass(frozen=True)
class Normalisation:
    """T1w -> template: the transform files and the template image they were fitted to."""

    transforms: list[Path]
    template: Path


def register(fixed, moving, transform: str, outprefix: str, **options) -> list[str]:
    """``ants.registration`` with its failures turned into :class:`RegistrationError`."""
    import ants

    ants.config._random_seed = RANDOM_SEED
    try:
        result = ants.registration(fixed, moving, type_of_transform=transform,
                                   outprefix=outprefix, **options)
    except (RuntimeError, ValueError) as error:
        raise RegistrationError(f"{outprefix}: {transform} registration failed ({error}) -- "
                                "check the images overlap and are not empty") from error
    return list(result["fwdtransforms"])


def schedule(image) -> dict:
    """Multi-resolution settings sized to the image (the defaults shrink 6x, too much here)."""
    levels = 3 if min(image.shape[:3]) >= 48 else 2
    return {
        "aff_shrink_factors": (4, 2, 1)[-levels:],
        "aff_smoothing_sigmas": (2, 1, 0)[-levels:],
        "aff_iterations": (500, 250, 100)[-levels:],
    }


def syn_options(image) -> dict:
    """The SyN stage's metric and iterations (see :data:`CC_WINDOW_MM`)."""
    radius = max(1, int(round(CC_WINDOW_MM / float(min(image.spacing)))))
    return {"syn_metric": "CC", "syn_sampling": radius, "reg_iterations": SYN_ITERATIONS}


def lesion_free_mask(lesion, dilate_mm: float = 4.0):
    """Everything but the (slightly dilated) lesion, as an ants image of 0/1."""
    import ants

    radius = max(1, int(round(dilate_mm / min(lesion.spacing))))
    grown = ants.morphology(lesion.threshold_image(0.5, 1e9), "dilate", radius, mtype="binary")
    return lesion.new_image_like((grown.numpy() < 0.5).astype(np.float32))


def normalise_t1w(t1w, lesion, template, transform: str, workdir: str | Path,
                  initial: str | None = None, mask_lesion: bool = True,
                  **options) -> list[str]:
    """T1w -> template, rigid then ``transform``; the lesion is left out of the cost.

    ``initial`` (an affine already fitted, e.g. by brain extraction to the same template)
    replaces the rigid stage.  ``mask_lesion=False`` lets the lesion into the cost (only to
    measure what masking buys, ``tests/test_native_lesion.py``); ``options`` go to the last
    :func:`ants.registration` call (e.g. ``reg_iterations``).
    """
    if transform not in TRANSFORMS:
        raise ConfigError(f"T1w -> MNI transform {transform!r} unknown -- "
                          f"use one of {', '.join(TRANSFORMS)}")
    workdir = Path(workdir)
    brain = template.new_image_like((template.numpy() > 0).astype(np.float32))
    mask = lesion_free_mask(lesion) if mask_lesion else None
    if transform == "SyN":
        options = {**syn_options(t1w), **options}
    if initial is not None and transform != "Rigid":
        return register(template, t1w, transform, str(workdir / f"t1w2mni_{transform}_"),
                        initial_transform=str(initial), mask=brain, moving_mask=mask,
                        mask_all_stages=True, **{**schedule(t1w), **options})
    rigid = register(template, t1w, "Rigid", str(workdir / "t1w2mni_rigid_"),
                     mask=brain, moving_mask=mask, mask_all_stages=True, **schedule(t1w))
    if transform == "Rigid":
        return rigid
    return register(template, t1w, transform, str(workdir / f"t1w2mni_{transform}_"),
                    initial_transform=rigid[0], mask=brain, moving_mask=mask,
                    mask_all_stages=True, **{**schedule(t1w), **options})


def coregister_bold(boldref: str | Path, t1w: str | Path, workdir: str | Path) -> list[Path]:
    """BOLD reference -> T1w, rigid (mutual information: the contrasts differ)."""
    import ants

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    reference = ants.image_read(str(boldref))
    anatomy = ants.image_read(str(t1w))
    # The T1w taken to the BOLD's voxel size: the cost is evaluated on the fixed image's grid,
    # and a 1 mm T1w made it 36x dearer than a 3 mm one for nothing the BOLD can resolve
    # (measured on the bench: 128 s -> 3.5 s, the two transforms 0.04 mm apart on the brain).
    voxel = max(float(min(reference.spacing)), float(min(anatomy.spacing)))
    if voxel > float(min(anatomy.spacing)) * 1.01:
        anatomy = ants.resample_image(anatomy, (voxel,) * 3, False, 0)
    files = register(anatomy, reference, "Rigid", str(workdir / "bold2t1w_"),
                     aff_metric="mattes", **schedule(reference))
    return [Path(f) for f in files]


def normalise_session(t1w: str | Path, lesion: str | Path, transform: str,
                      workdir: str | Path, initial: str | Path | None = None,
                      mask_lesion: bool = True, **options) -> Normalisation:
    """T1w -> MNI152NLin2009cAsym with the lesion masked out; files written in ``workdir``.

    The fit is made on a :data:`FIT_GRID_MM` grid: the template is taken at that voxel size,
    and the T1w and its lesion are resampled to it when theirs differs; the template is
    written as ``template.nii.gz`` so the resampling step uses the very image the T1w was
    fitted to.  ``t1w`` is best the brain-extracted T1w, and ``initial`` the affine brain
    extraction fitted.
    ``mask_lesion`` and ``options``: as :func:`normalise_t1w` takes them.
    """
    import ants

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t1w_image, lesion_image = ants.image_read(str(t1w)), ants.image_read(str(lesion))
    voxel = FIT_GRID_MM
    template_file = write_nifti(workdir / "template.nii.gz", template_image(voxel))
    if abs(float(min(t1w_image.spacing)) - voxel) > 0.01 * voxel:
        # The T1w taken to the template's voxel size too.  A finer one: every level smooths
        # and samples the moving image, and a 1 mm T1w made the SyN twice as dear (measured on
        # the bench: 20 s -> 9.5 s; MNI brain-mask Dice 0.978 -> 0.994).  A coarser one (3 mm):
        # the SyN's coarsest level would be 12 mm, where CC lost the brain's edge (ROI
        # centroid 2.2 mm off against 0.38 mm for the affine alone).
        t1w_image = ants.resample_image(t1w_image, (voxel,) * 3, False, 0)
        lesion_image = ants.resample_image_to_target(lesion_image, t1w_image,
                                                     "nearestNeighbor")
    files = normalise_t1w(t1w_image, lesion_image, ants.image_read(str(template_file)),
                          transform, workdir, None if initial is None else str(initial),
                          mask_lesion=mask_lesion, **options)
    return Normalisation(transforms=[Path(f) for f in files], template=template_file)
