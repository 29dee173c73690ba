"""Head-motion estimation: every BOLD volume registered rigidly to the run's temporal mean.

The six rigid parameters per volume take fMRIPrep's column names (``trans_*`` in mm, ``rot_*``
in radians, rotations about the world origin, matrix ``T @ Rz @ Ry @ Rx``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.derivatives.writing import write_nifti, write_tsv
from hermesflow.preproc.confounds import MOTION_COLUMNS
from hermesflow.preproc.native.registration import register

# ITK works in LPS, NIfTI and the motion parameters in RAS.
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Small images, little motion, and each volume starts from its predecessor's pose: one level
# at half resolution (smoothed by a voxel) is enough.  Measured on the bench's 3 mm run (53 x
# 65 x 56, 120 volumes, true s.d. 0.12-0.45 mm): 0.17 s a volume, lowest r 0.999; the earlier
# two levels (shrink 2 then 1, 100 + 50 iterations, half the voxels sampled) took 2-4 s a
# volume for the same r.  A full-resolution level costs per voxel, not per sample, and
# without smoothing the noise costs more r than the resolution gains (r 0.973 at 6 mm).
_MOTION_OPTIONS = {"aff_metric": "meansquares", "aff_shrink_factors": (2,),
                   "aff_smoothing_sigmas": (1,), "aff_iterations": (30,),
                   "aff_random_sampling_rate": 0.2}


@dataclass(frozen=True)
class HeadMotion:
    """The files head-motion estimation wrote (all in its working folder)."""

    boldref: Path
    transforms: list[Path]
    parameters: Path


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


def motion_correct(volumes: list, workdir: Path) -> tuple[object, list[str], np.ndarray]:
    """Register every volume rigidly to the temporal mean of the run.

    Parameters
    ----------
    volumes : list of ants.ANTsImage
        The 3D volumes of the run.
    workdir : path
        Where the transform files go (``mc<index>_0GenericAffine.mat``).

    Returns
    -------
    reference : ants.ANTsImage
        The mean volume every volume is aligned to.
    transforms : list of str
        Per volume, the ANTs transform from reference points to that volume's points.
    motion : ndarray, shape (n_volumes, 6)
        The head pose of each volume relative to the reference (``trans_*`` mm, ``rot_*`` rad).
    """
    reference = volumes[0].new_image_like(np.mean([v.numpy() for v in volumes], axis=0))
    transforms, motion = [], []
    for index, volume in enumerate(volumes):
        # Heads drift slowly: the previous volume's pose is a closer start than the centres
        # of mass, so few iterations suffice (the first volume starts from the centres).  The
        # file written holds the whole pose: antspyx collapses the start into it.
        start = {"initial_transform": transforms[-1]} if transforms else {}
        files = register(reference, volume, "Rigid", str(Path(workdir) / f"mc{index:04d}_"),
                         **_MOTION_OPTIONS, **start)
        # A rigid registration writes exactly one (affine) file.
        transforms.append(files[0])
        # The transform maps reference points to this volume's points: the head moved by
        # its inverse.
        motion.append(rigid_parameters(np.linalg.inv(transform_matrix(files[0]))))
    return reference, transforms, np.array(motion)


def estimate_head_motion(bold: str | Path, workdir: str | Path) -> HeadMotion:
    """Motion-correct one BOLD run and keep what later steps need as files in ``workdir``.

    Writes ``boldref.nii.gz`` (the mean volume), one ``mc<index>_0GenericAffine.mat`` per
    volume and ``motion_params.tsv`` (the six :data:`MOTION_COLUMNS`, one row per volume).
    """
    import ants

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    volumes = ants.ndimage_to_list(ants.image_read(str(bold)))
    reference, transforms, motion = motion_correct(volumes, workdir)
    # ANTs' arrays share NIfTI's voxel order, so the raw run's affine places the mean.
    boldref = write_nifti(workdir / "boldref.nii.gz", nib.Nifti1Image(
        reference.numpy().astype(np.float32), nib.load(str(bold)).affine))
    parameters = write_tsv(workdir / "motion_params.tsv",
                           pd.DataFrame(motion, columns=list(MOTION_COLUMNS)))
    return HeadMotion(boldref=boldref, transforms=[Path(t) for t in transforms],
                      parameters=parameters)


def read_motion(parameters: str | Path) -> np.ndarray:
    """The ``(n_volumes, 6)`` motion array of a ``motion_params.tsv``."""
    return pd.read_csv(parameters, sep="\t")[list(MOTION_COLUMNS)].to_numpy(dtype=float)
