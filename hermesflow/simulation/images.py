"""Images of the simulated trial: template grid, lesions, head motion and the BOLD series.

Everything is generated in MNI152NLin2009cAsym on an isotropic grid of ``voxel_size`` mm (the
"preprocessed" data that fMRIPrep would write), then moved into a per-subject native space with
per-volume head motion to make the raw data.  Units: BOLD in arbitrary scanner units around a
baseline of ``~1000 * gain``; activation amplitudes in percent signal change per unit of the
HRF-convolved ``move`` regressor (the coefficient nilearn estimates).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn.glm.first_level import compute_regressor
from nilearn.image import resample_img
from scipy import ndimage, signal

from hermesflow.arrays import nonzero_box
from hermesflow.derivatives import writing
from hermesflow.roi.atlases import load_atlas, roi_masks, template_path

# The simulator rewrites its whole dataset for every demo and test run: gzip level 1 takes
# about half the time of the writer's default 4 for ~3 % more bytes on noisy BOLD.
GZIP_LEVEL = 1


@dataclass
class TemplateGrid:
    """The MNI grid every simulated session shares, with its brain mask and ROI masks.

    ``rois`` are the masks the pipeline measures with (the atlas thresholded on this grid);
    the activation is placed in other maps (:mod:`hermesflow.simulation.truth`).
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    t1w: np.ndarray
    brain: np.ndarray
    rois: dict[tuple[str, str], np.ndarray]

    def image(self, data: np.ndarray, dtype=None) -> nib.Nifti1Image:
        # Fortran order is NIfTI's own: nibabel then writes each volume without a strided copy.
        data = np.asfortranarray(data if dtype is None else data.astype(dtype, copy=False))
        img = nib.Nifti1Image(data, self.affine)
        img.header.set_xyzt_units("mm", "sec")
        return img


def write_nifti(path: str | Path, img: nib.Nifti1Image) -> Path:
    """The one atomic NIfTI writer at the simulator's fast gzip level."""
    return writing.write_nifti(path, img, compresslevel=GZIP_LEVEL)


def make_grid(voxel_size: float, atlas: str = "juelich", threshold: float = 25.0) -> TemplateGrid:
    """Resample the MNI152NLin2009cAsym brain to ``voxel_size`` mm; build masks on that grid."""
    source = nib.load(template_path())
    template = nib.Nifti1Image(np.asarray(source.dataobj, np.float32), source.affine)
    src_shape = np.array(template.shape[:3])
    shape = tuple(int(n) for n in np.ceil(src_shape / voxel_size))
    affine = template.affine.copy()
    affine[:3, :3] = np.diag(np.sign(np.diag(template.affine)[:3]) * voxel_size)
    t1w = resample_img(
        template, target_affine=affine, target_shape=shape, interpolation="continuous",
        force_resample=True, copy_header=True,
    )
    t1w_data = np.clip(np.asarray(t1w.dataobj, dtype=np.float32), 0, None)
    brain = t1w_data > 0.15 * t1w_data.max()
    # Crop to the brain plus a margin for head motion: a third fewer voxels to simulate.
    crop = nonzero_box(brain, margin=2)
    t1w_data, brain = t1w_data[crop], brain[crop]
    shape = tuple(int(n) for n in brain.shape)
    affine[:3, 3] = nib.affines.apply_affine(affine, [part.start for part in crop])
    brain = ndimage.binary_fill_holes(ndimage.binary_opening(brain))
    grid = TemplateGrid(affine, shape, t1w_data, brain, {})
    grid.rois = roi_masks(load_atlas(atlas), grid.image(brain, np.uint8), threshold)
    return grid


def lesion_mask(grid: TemplateGrid, side: str, radius_mm: float, rng) -> np.ndarray:
    """An ellipsoidal subcortical (corona radiata / internal capsule) lesion on ``side``."""
    sign = -1.0 if side == "L" else 1.0
    centre_mm = np.array([sign * 24.0, -12.0, 14.0]) + rng.normal(0, 3.0, 3)
    ijk = np.indices(grid.shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(grid.affine, ijk)
    radii = radius_mm * np.array([0.8, 1.2, 1.0])
    inside = (((xyz - centre_mm) / radii) ** 2).sum(axis=1) <= 1.0
    return inside.reshape(grid.shape) & grid.brain


def block_regressor(onsets: np.ndarray, duration: float, tr: float, n_volumes: int) -> np.ndarray:
    """The HRF-convolved ``move`` regressor, as nilearn's GLM builds it (Glover HRF)."""
    frame_times = np.arange(n_volumes) * tr
    condition = np.vstack([onsets, np.full(len(onsets), duration), np.ones(len(onsets))])
    regressor, _ = compute_regressor(condition, "glover", frame_times)
    return regressor[:, 0]


def head_motion(n_volumes: int, rng, scale: float = 1.0) -> np.ndarray:
    """Six rigid-body parameters per volume (mm, radians): a slow random walk plus jerks."""
    steps = rng.normal(0.0, 1.0, (n_volumes, 6)) * np.array([0.03] * 3 + [0.0006] * 3)
    jerks = rng.random(n_volumes) < 0.03
    steps[jerks] *= 8.0
    motion = np.cumsum(steps, axis=0) * scale
    return motion - motion[0]


def ar1_noise(shape: tuple[int, int], phi: float, sd: float, rng) -> np.ndarray:
    """Stationary AR(1) noise, ``shape = (n_volumes, n_voxels)``, marginal s.d. ``sd``."""
    innovations = rng.normal(0.0, sd * np.sqrt(1 - phi**2), shape).astype(np.float32)
    innovations[0] = rng.normal(0.0, sd, shape[1])
    # noise[t] = phi * noise[t - 1] + innovations[t], in float32 as the loop it replaces.
    return signal.lfilter([1.0], [1.0, -phi], innovations, axis=0).astype(np.float32, copy=False)


@dataclass
class BoldSpec:
    tr: float
    n_volumes: int
    onsets: np.ndarray
    duration: float
    noise_sd: float = 1.0  # percent of baseline
    ar_phi: float = 0.3
    drift_pct: float = 1.0
    motion_artefact_pct: float = 0.6


def simulate_bold(
    grid: TemplateGrid,
    amplitude: np.ndarray,
    motion: np.ndarray,
    gain: float,
    spec: BoldSpec,
    rng,
) -> np.ndarray:
    """MNI-space BOLD series ``(x, y, z, t)``.

    ``amplitude`` is a 3D map of percent signal change per unit regressor.  Noise: AR(1) per
    voxel, a slow cosine drift, and intensity artefacts proportional to the motion parameters
    (what motion correction leaves behind, and what the confound regressors absorb).
    """
    regressor = block_regressor(spec.onsets, spec.duration, spec.tr, spec.n_volumes)
    brain = grid.brain
    n_vox = int(brain.sum())
    baseline = 1000.0 * gain * (0.6 + 0.4 * grid.t1w[brain] / grid.t1w[brain].max())
    percent = np.outer(regressor, amplitude[brain]).astype(np.float32)
    percent += ar1_noise((spec.n_volumes, n_vox), spec.ar_phi, spec.noise_sd, rng)
    t = np.arange(spec.n_volumes) / spec.n_volumes
    drift_shape = np.cos(np.pi * t)[:, None] * rng.normal(0, spec.drift_pct, n_vox)[None, :]
    percent += drift_shape.astype(np.float32)
    standardised = (motion - motion.mean(0)) / (motion.std(0) + 1e-12)
    weights = rng.normal(0, spec.motion_artefact_pct / np.sqrt(6), (6, n_vox))
    percent += (standardised @ weights).astype(np.float32)
    # Fortran order: each volume contiguous, for the resampling to native space and the writer.
    series = np.zeros(grid.shape + (spec.n_volumes,), np.float32, order="F")
    series[brain] = (baseline[None, :] * (1.0 + percent / 100.0)).T
    return series


def rigid_matrix(params: np.ndarray) -> np.ndarray:
    """4x4 rigid transform from (tx, ty, tz, rx, ry, rz), rotations in radians about the origin."""
    tx, ty, tz, rx, ry, rz = params
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rot_z @ rot_y @ rot_x
    matrix[:3, 3] = [tx, ty, tz]
    return matrix


def to_native(volume: np.ndarray, affine: np.ndarray, world_to_mni: np.ndarray) -> np.ndarray:
    """Resample one MNI volume into native space (same grid, head moved by ``world_to_mni``)."""
    voxel_map = np.linalg.inv(affine) @ world_to_mni @ affine
    return ndimage.affine_transform(
        volume, voxel_map[:3, :3], voxel_map[:3, 3], order=1, mode="constant", cval=0.0
    )


def native_bold(series: np.ndarray, affine: np.ndarray, head: np.ndarray,
                motion: np.ndarray) -> np.ndarray:
    """Raw BOLD: each MNI volume moved by the subject's head pose and that volume's motion.

    :func:`to_native` per volume, on volumes contiguous in memory (Fortran order): slicing a
    volume out of a C-order series was a strided copy that cost 2-3x the interpolation.
    Measured and left out: a numpy trilinear over all volumes at once, and interpolating only
    the voxels a volume can reach (``map_coordinates``); both were slower than ``ndimage``'s
    ``affine_transform`` on contiguous volumes.

    Returns
    -------
    ndarray, shape (x, y, z, t), float32, Fortran order
        Fortran order is also how NIfTI stores a series: writing it copies no strided slices.
    """
    series = np.asfortranarray(series, dtype=np.float32)
    native = np.empty(series.shape, np.float32, order="F")
    for t in range(series.shape[-1]):
        native[..., t] = to_native(series[..., t], affine, head @ rigid_matrix(motion[t]))
    return native
