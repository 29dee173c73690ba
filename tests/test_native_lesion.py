"""Lesion masking of the T1w -> MNI SyN, against a known native -> MNI truth.

A skull-on T1w is built on the simulator's head grid around MNI152NLin2009cAsym: a large
CSF-dark lesion (53 mL, chronic-infarct-like, 0.1 of white matter) sits under and partly in
the left M1 (Juelich BA4a + BA4p), then the head is moved into a native space by a known rigid
pose composed with a smooth warp (up to 4 mm), so the SyN has real work to do.  Brain
extraction runs once; the SyN (``normalise_session``, the pipeline's own settings) runs with
the lesion masked out of the metric and with it left in.  The ROI's MNI points are carried
into native space through each fitted transform and back through the true warp: the distance
to where they started is the error, in mm.

What was measured (seed fixed, brain extraction shared), masked / unmasked:

* 2 mm (the pipeline's template grid for a 1-2 mm T1w; ``slow``): ROI centroid error
  0.42 / 0.22 mm; 99th percentile of the per-voxel error 1.00 / 1.93 mm.  Rigid-only truth:
  0.46 / 0.26 and 1.36 / 2.41 mm.  Brain extraction's affine alone: centroid 0.95 mm.
* 3 mm (fast): centroid 1.28 / 1.04 mm, 99th percentile 2.77 / 3.40 mm; here both SyNs
  are worse than the affine alone (0.38 mm): the SyN's coarse levels (12 and 6 mm) pull the
  brain's edge at the vertex inwards by ~1 mm.

So masking does *not* bring the ROI's centroid closer on this simulator: the unmasked SyN's
drag is local (the lesioned part of M1 and its rim) and averages out over the ROI.  What
masking buys is the worst case: the lesion no longer tears the warp next to it.  The tests
assert that, and bound both centroid errors.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

pytest.importorskip("ants")

from hermesflow.derivatives.writing import write_nifti  # noqa: E402
from hermesflow.preproc.native import extract_brain, normalise_session  # noqa: E402
from hermesflow.roi.atlases import load_atlas, roi_masks  # noqa: E402
from hermesflow.simulation.head import head_image, make_head_grid, noisy  # noqa: E402
from hermesflow.simulation.images import rigid_matrix  # noqa: E402

# The lesion: an ellipsoid (mm radii) centred this far from the ROI's centroid (medial and
# below it, in the corona radiata under the precentral gyrus, reaching into its cortex).
LESION_RADII = 22.0 * np.array([1.0, 1.2, 1.0])
LESION_OFFSET = np.array([12.0, 0.0, -14.0])
LESION_LEVEL = 0.1
POSE = (3.0, -4.0, 2.0, 0.06, -0.04, 0.05)
WARP_MM, WARP_SMOOTH_MM = 4.0, 15.0
# ITK points are LPS; the NIfTI world is RAS.
_LPS = np.array([-1.0, -1.0, 1.0])


class Subject:
    """A lesioned head moved from MNI into a native space by a known map ``native_to_mni``."""

    def __init__(self, voxel_size: float, root, seed: int = 1):
        rng = np.random.default_rng(seed)
        grid = make_head_grid(voxel_size)
        rois = roi_masks(load_atlas("juelich"), grid.image(grid.brain.astype(np.uint8)))
        m1 = rois[("mi4a", "L")] | rois[("mi4p", "L")]
        xyz = nib.affines.apply_affine(grid.affine, np.indices(grid.shape).reshape(3, -1).T)
        self.roi_points = xyz[m1.ravel()]
        centre = self.roi_points.mean(axis=0) + LESION_OFFSET
        lesion = ((((xyz - centre) / LESION_RADII) ** 2).sum(axis=1) <= 1.0).reshape(
            grid.shape) & grid.brain
        white = float(np.percentile(grid.t1w[grid.brain], 99))
        t1w = noisy(np.where(lesion, LESION_LEVEL * white, head_image(grid, rng)), rng)
        # A smooth displacement field (mm, on the MNI grid), largest length WARP_MM.
        field = np.stack([ndimage.gaussian_filter(rng.normal(size=grid.shape),
                                                  WARP_SMOOTH_MM / voxel_size)
                          for _ in range(3)], axis=-1)
        self.field = field * WARP_MM / np.linalg.norm(field, axis=-1).max()
        self.affine, self.pose = grid.affine, rigid_matrix(np.array(POSE))
        # Native voxel x shows the MNI point native_to_mni(x): sample the MNI images there.
        where = nib.affines.apply_affine(np.linalg.inv(grid.affine),
                                         self.native_to_mni(xyz)).T

        def native(volume):
            return ndimage.map_coordinates(volume, where, order=1).reshape(grid.shape)

        self.t1w = write_nifti(root / "T1w.nii.gz", grid.image(
            (native(t1w) * 10.0).astype(np.int16)))
        self.lesion = write_nifti(root / "lesion.nii.gz", grid.image(
            (native(lesion.astype(np.float32)) > 0.5).astype(np.uint8)))
        self.lesion_ml = float(lesion.sum() * voxel_size ** 3 / 1000.0)
        self.lesioned_fraction = float(lesion[m1].mean())

    def native_to_mni(self, points: np.ndarray) -> np.ndarray:
        """The true map: the rigid pose, then the smooth warp (world mm, RAS)."""
        posed = nib.affines.apply_affine(self.pose, points)
        where = nib.affines.apply_affine(np.linalg.inv(self.affine), posed).T
        shift = np.stack([ndimage.map_coordinates(self.field[..., k], where, order=1,
                                                  mode="nearest") for k in range(3)], axis=-1)
        return posed + shift

    def errors(self, transforms) -> dict[str, float]:
        """The ROI carried MNI -> native by ``transforms``, then back by the truth: mm off."""
        import ants

        points = pd.DataFrame(self.roi_points * _LPS, columns=["x", "y", "z"])
        native = ants.apply_transforms_to_points(3, points, [str(t) for t in transforms])
        back = self.native_to_mni(native[["x", "y", "z"]].to_numpy() * _LPS)
        offsets = back - self.roi_points
        distance = np.linalg.norm(offsets, axis=1)
        return {"centroid": float(np.linalg.norm(offsets.mean(axis=0))),
                "p99": float(np.percentile(distance, 99)), "mean": float(distance.mean())}


def _compare(voxel_size: float, root, record_property) -> dict[str, dict[str, float]]:
    subject = Subject(voxel_size, root)
    assert subject.lesion_ml > 40.0 and subject.lesioned_fraction > 0.2
    brain = extract_brain(subject.t1w, subject.lesion, root / "brain")
    found = {"affine": subject.errors(brain.transforms)}
    for name, masked in (("masked", True), ("unmasked", False)):
        fit = normalise_session(brain.brain, subject.lesion, "SyN", root / name,
                                initial=brain.transforms[0], mask_lesion=masked)
        found[name] = subject.errors(fit.transforms)
    print(f"\nBA4a/4p (L) error in mm at {voxel_size:g} mm, lesion {subject.lesion_ml:.0f} mL "
          f"({subject.lesioned_fraction:.0%} of the ROI):")
    for name, errors in found.items():
        print(f"  {name:9s} " + ", ".join(f"{k} {v:.2f}" for k, v in errors.items()))
        for key, value in errors.items():
            record_property(f"{name}_{key}_mm", round(value, 3))
    return found


def test_lesion_masking_spares_the_warp_next_to_the_lesion_3mm(tmp_path, record_property):
    found = _compare(3.0, tmp_path, record_property)
    masked, unmasked = found["masked"], found["unmasked"]
    # Measured: p99 2.77 (masked) vs 3.40 mm; centroid 1.28 vs 1.04 mm.
    assert masked["p99"] < unmasked["p99"] - 0.3
    assert max(masked["centroid"], unmasked["centroid"]) < 1.6
    assert masked["centroid"] < unmasked["centroid"] + 0.5


@pytest.mark.slow
def test_lesion_masking_spares_the_warp_next_to_the_lesion_2mm(tmp_path, record_property):
    found = _compare(2.0, tmp_path, record_property)
    masked, unmasked = found["masked"], found["unmasked"]
    # Measured: p99 1.00 (masked) vs 1.93 mm; centroid 0.42 vs 0.22 mm, affine alone 0.95.
    assert masked["p99"] < unmasked["p99"] - 0.5
    assert max(masked["centroid"], unmasked["centroid"]) < 0.7
    assert max(masked["centroid"], unmasked["centroid"]) < found["affine"]["centroid"]
