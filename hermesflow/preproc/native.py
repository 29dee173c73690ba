"""The ``--preproc native`` source: one session preprocessed with antspyx, fMRIPrep layout out.

:func:`run_native_session` does the work and is tested without Nipype:

1. checks the raw inputs (T1w, lesion mask, BOLD run) before anything starts;
2. head-motion correction: every BOLD volume registered rigidly (``ants.registration``) to
   the temporal mean of the run; the six rigid parameters per volume in fMRIPrep's column
   names (``trans_*`` in mm, ``rot_*`` in radians, rotations about the world origin, matrix
   ``Rz @ Ry @ Rx``) and Power's framewise displacement;
3. BOLD reference -> T1w (rigid), T1w -> MNI152NLin2009cAsym (``Affine`` by default, ``SyN``
   on request) with the lesion left out of the cost (``moving_mask``);
4. every volume resampled once through the composed transforms onto the output grid (a given
   reference image, else the template at the BOLD voxel size), optional Gaussian smoothing,
   the lesion mask and a brain mask on the same grid;
5. everything written atomically in the fMRIPrep layout, so that
   :func:`hermesflow.preproc.collect.collect_session` finds it.

:class:`NativePreproc` is the thin ``SimpleInterface`` over it.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from hermesflow.bids.anat import NativeInputs, find_inputs  # noqa: F401  (re-exported)
from hermesflow.derivatives.description import dataset_description as build_description
from hermesflow.derivatives.description import hermesflow_generated_by, write_dataset_description
from hermesflow.derivatives.writing import write_json, write_nifti, write_tsv
from hermesflow.errors import HermesflowError
from hermesflow.preproc.confounds import confounds_table
from hermesflow.roi.atlases import template_path

LOGGER = logging.getLogger("hermesflow")
SPACE = "MNI152NLin2009cAsym"
# ITK works in LPS, NIfTI and the motion parameters in RAS.
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_TRANSFORMS = ("Rigid", "Affine", "SyN")


class RegistrationError(HermesflowError):
    """antspyx could not register two images."""


@dataclass
class NativeResult:
    """What :func:`run_native_session` wrote (paths) and the motion it found."""

    fmriprep_dir: str
    bold: str
    mask: str
    confounds: str
    lesion_mask: str
    motion: np.ndarray


# -- inputs -------------------------------------------------------------------------------

# -- transforms -----------------------------------------------------------------------------

def transform_matrix(transform_file: str | Path) -> np.ndarray:
    """4x4 RAS matrix of a linear ANTs transform file (it maps fixed points to moving points)."""
    import ants

    transform = ants.read_transform(str(transform_file))
    origin = np.asarray(transform.apply_to_point([0.0, 0.0, 0.0]))
    matrix = np.eye(4)
    for axis in range(3):
        unit = np.zeros(3)
        unit[axis] = 1.0
        matrix[:3, axis] = np.asarray(transform.apply_to_point(unit.tolist())) - origin
    matrix[:3, 3] = origin
    return _LPS @ matrix @ _LPS


def rigid_parameters(matrix: np.ndarray) -> np.ndarray:
    """(tx, ty, tz, rx, ry, rz) of a rigid 4x4 matrix ``T @ Rz @ Ry @ Rx`` (mm, radians)."""
    rotation = matrix[:3, :3]
    ry = -np.arcsin(np.clip(rotation[2, 0], -1.0, 1.0))
    rx = np.arctan2(rotation[2, 1], rotation[2, 2])
    rz = np.arctan2(rotation[1, 0], rotation[0, 0])
    return np.concatenate([matrix[:3, 3], [rx, ry, rz]])


def _register(fixed, moving, transform: str, outprefix: str, **options) -> list[str]:
    import ants

    try:
        result = ants.registration(fixed, moving, type_of_transform=transform,
                                   outprefix=outprefix, **options)
    except (RuntimeError, ValueError) as error:
        raise RegistrationError(f"{transform} registration failed ({outprefix}): {error}") \
            from error
    return list(result["fwdtransforms"])


def _schedule(image) -> dict:
    """Multi-resolution settings sized to the image (the defaults shrink 6x, too much here)."""
    levels = 3 if min(image.shape[:3]) >= 48 else 2
    return {
        "aff_shrink_factors": (4, 2, 1)[-levels:],
        "aff_smoothing_sigmas": (2, 1, 0)[-levels:],
        "aff_iterations": (500, 250, 100)[-levels:],
    }


def motion_correct(volumes: list, workdir: Path) -> tuple[object, list[list[str]], np.ndarray]:
    """Register every volume rigidly to the temporal mean of the run.

    Returns
    -------
    reference : ants.ANTsImage
        The mean volume every volume is aligned to.
    transforms : list of list of str
        Per volume, the ANTs transform from reference points to that volume's points.
    motion : ndarray, shape (n_volumes, 6)
        The head pose of each volume relative to the reference (``trans_*`` mm, ``rot_*`` rad).
    """
    reference = volumes[0].new_image_like(np.mean([v.numpy() for v in volumes], axis=0))
    options = {"aff_metric": "meansquares", "aff_shrink_factors": (2, 1),
               "aff_smoothing_sigmas": (1, 0), "aff_iterations": (100, 50),
               "aff_random_sampling_rate": 0.5}
    transforms, motion = [], []
    for index, volume in enumerate(volumes):
        files = _register(reference, volume, "Rigid", str(workdir / f"mc{index:04d}_"),
                          **options)
        transforms.append(files)
        # The transform maps reference points to this volume's points: the head moved by
        # its inverse.
        motion.append(rigid_parameters(np.linalg.inv(transform_matrix(files[0]))))
    return reference, transforms, np.array(motion)


def lesion_free_mask(lesion, dilate_mm: float = 4.0):
    """Everything but the (slightly dilated) lesion, as an ants image of 0/1."""
    import ants

    radius = max(1, int(round(dilate_mm / min(lesion.spacing))))
    grown = ants.morphology(lesion.threshold_image(0.5, 1e9), "dilate", radius, mtype="binary")
    return lesion.new_image_like((grown.numpy() < 0.5).astype(np.float32))


def normalise_t1w(t1w, lesion, template, transform: str, workdir: Path) -> list[str]:
    """T1w -> template, rigid then ``transform``; the lesion is left out of the cost."""
    if transform not in _TRANSFORMS:
        raise ValueError(f"transform must be one of {_TRANSFORMS}, got {transform!r}")
    brain = template.new_image_like((template.numpy() > 0).astype(np.float32))
    mask = lesion_free_mask(lesion)
    rigid = _register(template, t1w, "Rigid", str(workdir / "t1w2mni_rigid_"),
                      mask=brain, moving_mask=mask, mask_all_stages=True, **_schedule(t1w))
    if transform == "Rigid":
        return rigid
    return _register(template, t1w, transform, str(workdir / f"t1w2mni_{transform}_"),
                     initial_transform=rigid[0], mask=brain, moving_mask=mask,
                     mask_all_stages=True, **_schedule(t1w))


# -- grids and images -------------------------------------------------------------------------

def template_image(voxel_size: float) -> nib.Nifti1Image:
    """The MNI152NLin2009cAsym 1 mm brain resampled to ``voxel_size`` mm (same field of view)."""
    from nilearn.image import resample_img

    source = nib.load(template_path())
    template = nib.Nifti1Image(np.asarray(source.dataobj, np.float32), source.affine)
    if np.isclose(voxel_size, 1.0):
        return template
    affine = source.affine.copy()
    affine[:3, :3] = np.diag(np.sign(np.diag(source.affine)[:3]) * voxel_size)
    shape = tuple(int(n) for n in np.ceil(np.array(source.shape[:3]) / voxel_size))
    return resample_img(template, target_affine=affine, target_shape=shape,
                        interpolation="continuous", force_resample=True, copy_header=True)


def _to_ants(img: nib.Nifti1Image, path: Path):
    import ants

    write_nifti(path, img)
    return ants.image_read(str(path))


def _grid_3d(reference: str | Path) -> nib.Nifti1Image:
    img = nib.load(str(reference))
    return nib.Nifti1Image(np.zeros(img.shape[:3], np.float32), img.affine)


def warp_series(volumes: list, grid, transforms: list[list[str]]) -> np.ndarray:
    """Each volume resampled once onto ``grid`` through its own chain of transforms."""
    import ants

    out = np.empty(grid.shape[:3] + (len(volumes),), np.float32)
    for index, (volume, chain) in enumerate(zip(volumes, transforms, strict=True)):
        warped = ants.apply_transforms(grid, volume, chain, interpolator="linear")
        out[..., index] = warped.numpy()
    return out


def brain_mask(template_on_grid: np.ndarray, mean_bold: np.ndarray) -> np.ndarray:
    """Template brain where the BOLD run has signal (drops voxels outside the field of view)."""
    from scipy import ndimage

    brain = template_on_grid > 0.15 * template_on_grid.max()
    brain = ndimage.binary_fill_holes(ndimage.binary_opening(brain))
    covered = mean_bold > 0.1 * np.percentile(mean_bold[brain], 95)
    return brain & covered


# -- the session ----------------------------------------------------------------------------

def output_names(fmriprep_dir: str | Path, subject: str, session: str, task: str) -> dict:
    """fMRIPrep-layout paths of every output of one session."""
    base = Path(fmriprep_dir) / f"sub-{subject}" / f"ses-{session}"
    stem = f"sub-{subject}_ses-{session}_task-{task}"
    return {
        "bold": base / "func" / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz",
        "bold_json": base / "func" / f"{stem}_space-{SPACE}_desc-preproc_bold.json",
        "mask": base / "func" / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz",
        "confounds": base / "func" / f"{stem}_desc-confounds_timeseries.tsv",
        "lesion_mask": base / "anat" / f"sub-{subject}_ses-{session}_space-{SPACE}"
                                        "_label-lesion_roi.nii.gz",
    }


def dataset_description() -> dict:
    return build_description("hermesflow native preprocessing", generated_by=[
        hermesflow_generated_by("hermesflow-native", "antspyx motion correction and "
                                "registration to MNI152NLin2009cAsym (lesion masked), "
                                "fMRIPrep layout.")])


def run_native_session(
    bids_dir: str | Path,
    fmriprep_dir: str | Path,
    subject: str,
    session: str,
    *,
    task: str = "passivewrist",
    reference: str | Path | None = None,
    smoothing_fwhm: float = 0.0,
    transform: str = "Affine",
) -> NativeResult:
    """Preprocess one session and write it in the fMRIPrep layout under ``fmriprep_dir``.

    Parameters
    ----------
    bids_dir, fmriprep_dir : path
        The raw dataset; the derivatives folder to write (created if needed).
    subject, session : str
        Labels, with or without prefix.
    task : str
        The BOLD task.
    reference : path, optional
        An image whose grid the outputs take (e.g. an existing fMRIPrep BOLD of the session);
        default: the template at the BOLD voxel size.
    smoothing_fwhm : float
        Gaussian smoothing of the MNI BOLD, mm (0: none; the GLM can smooth instead).
    transform : {"Rigid", "Affine", "SyN"}
        The T1w -> template model after the rigid stage.

    Returns
    -------
    NativeResult
    """
    import ants

    subject, session = subject.removeprefix("sub-"), session.removeprefix("ses-")
    inputs = find_inputs(bids_dir, subject, session, task)
    bold_img = nib.load(str(inputs.bold))
    t_r = float(bold_img.header.get_zooms()[3]) if bold_img.ndim == 4 else 0.0
    with tempfile.TemporaryDirectory(prefix="hermesflow-native-") as tmp:
        workdir = Path(tmp)
        volumes = ants.ndimage_to_list(ants.image_read(str(inputs.bold)))
        t1w = ants.image_read(str(inputs.t1w))
        lesion = ants.image_read(str(inputs.lesion))
        LOGGER.info("sub-%s ses-%s: motion correction of %d volumes", subject, session,
                    len(volumes))
        boldref, mc_transforms, motion = motion_correct(volumes, workdir)
        coreg = _register(t1w, boldref, "Rigid", str(workdir / "bold2t1w_"),
                          aff_metric="mattes", **_schedule(boldref))
        fixed_size = max(2.0, float(min(t1w.spacing)))
        template = _to_ants(template_image(fixed_size), workdir / "template.nii.gz")
        normalise = normalise_t1w(t1w, lesion, template, transform, workdir)

        voxel = float(min(volumes[0].spacing))
        grid_nii = _grid_3d(reference) if reference else template_image(voxel)
        grid = _to_ants(grid_nii, workdir / "grid.nii.gz")
        chains = [mc + coreg + normalise for mc in mc_transforms]
        series = warp_series(volumes, grid, chains)
        template_on_grid = ants.resample_image_to_target(template, grid, "linear").numpy()
        lesion_on_grid = ants.apply_transforms(grid, lesion, normalise, "linear").numpy() > 0.5
    mask = brain_mask(template_on_grid, series.mean(axis=-1))
    series[~mask] = 0.0
    return _write(fmriprep_dir, subject, session, task, grid_nii.affine, series, mask,
                  lesion_on_grid & mask, motion, t_r, smoothing_fwhm)


def _write(fmriprep_dir, subject, session, task, affine, series, mask, lesion, motion, t_r,
           smoothing_fwhm) -> NativeResult:
    names = output_names(fmriprep_dir, subject, session, task)
    bold = nib.Nifti1Image(series, affine)
    if smoothing_fwhm > 0:
        from nilearn.image import smooth_img

        bold = smooth_img(bold, smoothing_fwhm)
    bold.header.set_xyzt_units("mm", "sec")
    bold.header.set_zooms(bold.header.get_zooms()[:3] + (t_r,))
    write_nifti(names["bold"], bold)
    write_json(names["bold_json"], {"RepetitionTime": t_r, "TaskName": task,
                                    "SkullStripped": False, "SmoothingFWHM": smoothing_fwhm})
    write_nifti(names["mask"], nib.Nifti1Image(mask.astype(np.uint8), affine))
    write_nifti(names["lesion_mask"], nib.Nifti1Image(lesion.astype(np.uint8), affine))
    write_tsv(names["confounds"], confounds_table(motion, series[mask].mean(axis=0)))
    write_dataset_description(fmriprep_dir, dataset_description())
    return NativeResult(fmriprep_dir=str(fmriprep_dir), bold=str(names["bold"]),
                        mask=str(names["mask"]), confounds=str(names["confounds"]),
                        lesion_mask=str(names["lesion_mask"]), motion=motion)


# -- Nipype -----------------------------------------------------------------------------------
