"""Skull-on T1w images and scanner-like (oblique, non-RAS) raw affines for the simulator.

A head is built around the MNI152NLin2009cAsym brain on a grid padded to hold it: a CSF rim,
a skull with dark outer tables and a brighter marrow (diploe) core, scalp fat under the skin,
and the neck's muscle below the skull.  Each layer's thickness varies smoothly over the head
and from one subject to the next, a smooth bias field multiplies the image and noise is added,
so brain extraction meets what a scanner writes rather than the template it registers to.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from hermesflow.preproc.native.brain import brain_mask_of
from hermesflow.preproc.native.resample import template_image
from hermesflow.simulation import images as simimage
from hermesflow.simulation.images import write_nifti

_PAD_MM = 30.0
# T1w written as int16: template units (white matter ~100) scaled so noise is resolved.
INT16_SCALE = 10.0


@dataclass
class HeadGrid:
    """The MNI grid of the skull-on T1w: the template brain and its mask, padded for a head."""

    affine: np.ndarray
    shape: tuple[int, int, int]
    t1w: np.ndarray
    brain: np.ndarray
    voxel_size: float

    def image(self, data: np.ndarray, dtype=None) -> nib.Nifti1Image:
        data = np.asarray(data if dtype is None else data.astype(dtype))
        img = nib.Nifti1Image(data, self.affine)
        img.header.set_xyzt_units("mm", "sec")
        return img


def make_head_grid(voxel_size: float) -> HeadGrid:
    """The template brain at ``voxel_size`` mm on a grid padded by 30 mm on every side."""
    brain_img = template_image(voxel_size)
    pad = int(np.ceil(_PAD_MM / voxel_size))
    t1w = np.clip(np.pad(np.asarray(brain_img.dataobj, np.float32), pad), 0, None)
    affine = brain_img.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(brain_img.affine, [-pad] * 3)
    brain = brain_mask_of(t1w)
    return HeadGrid(affine, tuple(int(n) for n in t1w.shape), np.where(brain, t1w, 0.0),
                    brain, float(voxel_size))


def _smooth_field(shape, sigma_vox: float, rng) -> np.ndarray:
    """A smooth random field scaled to [0, 1]."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma_vox)
    return (field - field.min()) / (np.ptp(field) + 1e-12)


def head_image(grid: HeadGrid, rng) -> np.ndarray:
    """A subject's head around the template brain, in MNI on ``grid`` (no noise yet)."""
    voxel = grid.voxel_size
    white = float(np.percentile(grid.t1w[grid.brain], 99))
    # Thickness maps vary over ~3 cm of scalp; computed coarse, they cost little.
    coarse = tuple(max(4, n // 4) for n in grid.shape)
    fields = [ndimage.zoom(_smooth_field(coarse, 2.0, rng),
                           np.array(grid.shape) / np.array(coarse), order=1)
              for _ in range(4)]
    csf = 1.5 + 2.5 * fields[0]
    skull = csf + 4.0 + 4.0 * fields[1]
    scalp = skull + 5.0 + 4.0 * fields[2]
    distance = ndimage.distance_transform_edt(~grid.brain, sampling=voxel)
    head = grid.t1w.copy()
    rim = (distance > 0) & (distance <= csf)
    head[rim] = 0.15 * white
    bone = (distance > csf) & (distance <= skull)
    depth = (distance - csf) / (skull - csf)
    head[bone] = np.where((depth[bone] > 0.33) & (depth[bone] < 0.67), 0.45, 0.05) * white
    soft = (distance > skull) & (distance <= scalp)
    outer = (distance - skull) / (scalp - skull)
    head[soft] = np.where(outer[soft] < 0.7, 0.9, 0.5) * white
    # The neck: muscle below the skull, under the brain's centre, down to the grid's edge.
    ijk = np.indices(grid.shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(grid.affine, ijk).reshape(grid.shape + (3,))
    centre = nib.affines.apply_affine(grid.affine, np.argwhere(grid.brain).mean(axis=0))
    bottom = nib.affines.apply_affine(grid.affine, np.argwhere(grid.brain).min(axis=0))[2]
    neck = ((((xyz[..., 0] - centre[0]) / 45.0) ** 2 + ((xyz[..., 1] - centre[1] + 10) / 50.0)
             ** 2 <= 1.0) & (xyz[..., 2] < bottom + 25.0) & (distance > skull))
    head[neck] = 0.45 * white
    # A receive-coil bias: +-10 % over the head.
    bias = np.exp(0.2 * (fields[3] - 0.5))
    return (head * bias).astype(np.float32)


def noisy(image: np.ndarray, rng, sd_fraction: float = 0.015) -> np.ndarray:
    """Magnitude noise of ``sd_fraction`` of the image's 99th percentile (Rician-like)."""
    sd = sd_fraction * float(np.percentile(image[image > 0], 99))
    return np.abs(image + rng.normal(0.0, sd, image.shape)).astype(np.float32)


def oblique_frame(shape: tuple[int, ...], affine: np.ndarray, tilt_deg: float):
    """A scanner-like voxel frame for the same world content: x flipped (LAS), tilted.

    Returns ``(flip, new_affine)``: apply ``flip`` to the data array (3D or 4D) and save it
    with ``new_affine``.  The tilt rotates the world about the x axis, which moves the head
    (as a different position in the scanner would); every image of a session takes the same
    tilt, so they stay aligned with each other.
    """
    flip_x = np.eye(4)
    flip_x[0, 0], flip_x[0, 3] = -1.0, shape[0] - 1
    angle = np.deg2rad(tilt_deg)
    tilt = np.eye(4)
    tilt[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return (lambda data: np.ascontiguousarray(data[::-1])), tilt @ affine @ flip_x


def skull_anatomy(head_grid: HeadGrid | None, side: str, radius: float, rng, spec,
                  index: int) -> dict | None:
    """The subject's head and lesion on the skull-on T1w grid (MNI); None without a skull.

    The lesion is drawn from a copy of the subject's generator, so it has the same centre as
    on the BOLD grid and the subject's own stream is left as it was.
    """
    if not spec.skull:
        return None
    lesion_grid = simimage.TemplateGrid(head_grid.affine, head_grid.shape, head_grid.t1w,
                                        head_grid.brain, {})
    lesion = simimage.lesion_mask(lesion_grid, side, radius, copy.deepcopy(rng))
    # Its own stream: the head's shape does not shift the draws of anything else.
    head_rng = np.random.default_rng([spec.seed, index, 10])
    return {"grid": head_grid, "head": head_image(head_grid, head_rng),
            "lesion": lesion, "rng": head_rng}


def write_raw_anatomy(out, sub: str, ses: str, grid, t1w: np.ndarray, lesion: np.ndarray,
                      head: np.ndarray, scanner: float, anatomy: dict | None) -> None:
    """The session's raw T1w and lesion mask: skull-on (``anatomy``) or the brain on the
    BOLD grid, in the scanner frame (``scanner`` degrees of tilt, 0: RAS as simulated)."""
    anat, prefix = out / sub / ses / "anat", f"{sub}_{ses}"
    if anatomy is not None:
        write_anatomy(anat, out / "derivatives" / "simulation" / sub / ses / "anat", prefix,
                      anatomy, head, scanner)
        return
    write_nifti(anat / f"{prefix}_T1w.nii.gz", scanner_image(
        simimage.to_native(t1w, grid.affine, head).astype(np.int16), grid.affine, scanner))
    write_nifti(anat / f"{prefix}_T1w_label-lesion_roi.nii.gz", scanner_image(
        (simimage.to_native(lesion.astype(np.float32), grid.affine, head) > 0.5
         ).astype(np.uint8), grid.affine, scanner))


def drop_unused_options(spec_dict: dict) -> None:
    """Leave the scanner-realism options out of simulation.json when off (default outputs
    unchanged)."""
    if not spec_dict.get("skull"):
        spec_dict.pop("skull", None), spec_dict.pop("t1w_voxel_size", None)
    if not spec_dict.get("oblique"):
        spec_dict.pop("oblique", None), spec_dict.pop("oblique_deg", None)


def write_anatomy(anat, truth_anat, prefix, anatomy, head, scanner) -> None:
    """Skull-on T1w, its lesion mask and (truth) its brain mask, in native space."""
    hgrid, rng = anatomy["grid"], anatomy["rng"]
    t1w = noisy(anatomy["head"] * np.where(anatomy["lesion"], 0.5, 1.0), rng)
    native = {
        "T1w": simimage.to_native(t1w, hgrid.affine, head) * INT16_SCALE,
        "T1w_label-lesion_roi": simimage.to_native(
            anatomy["lesion"].astype(np.float32), hgrid.affine, head) > 0.5,
        "desc-brain_mask": simimage.to_native(
            hgrid.brain.astype(np.float32), hgrid.affine, head) > 0.5,
    }
    for suffix, data in native.items():
        dtype = np.int16 if suffix == "T1w" else np.uint8
        folder = truth_anat if suffix == "desc-brain_mask" else anat
        write_nifti(folder / f"{prefix}_{suffix}.nii.gz",
                    scanner_image(data.astype(dtype), hgrid.affine, scanner))


def scanner_image(data, affine, tilt):
    """``data`` with ``affine``; in an oblique session, flipped to LAS and tilted."""
    if tilt:
        flip, affine = oblique_frame(data.shape, affine, tilt)
        data = flip(data)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    return img
