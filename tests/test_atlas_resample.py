"""Atlas masks on the GLM grid equal what nilearn's ``resample_to_img`` gives.

The ROI node resamples with nibabel (``resample_from_to``: the same ``scipy.ndimage`` call)
so that a worker does not import nilearn for it; nilearn stays the reference.  Grids: the
demo's 4 mm, an off-lattice 2.5 mm, a left-right flipped 3 mm and an oblique one.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.image import resample_to_img

from hermesflow.roi.atlases import base, load_atlas


def _grid(zooms, origin, rotation: float = 0.0, shape=(60, 66, 60)) -> nib.Nifti1Image:
    affine = np.eye(4)
    turn = np.array([[np.cos(rotation), -np.sin(rotation), 0],
                     [np.sin(rotation), np.cos(rotation), 0], [0, 0, 1]])
    affine[:3, :3] = turn @ np.diag(zooms)
    affine[:3, 3] = origin
    return nib.Nifti1Image(np.zeros(shape, np.uint8), affine)


GRIDS = {
    "4mm": _grid((4.0, 4.0, 4.0), (-80, -116, -78), shape=(41, 50, 43)),
    "2.5mm": _grid((2.5, 2.5, 2.5), (-91.3, -125.1, -71.9), shape=(72, 86, 72)),
    "flipped": _grid((-3.0, 3.0, 3.0), (90, -112, -70)),
    "oblique": _grid((3.0, 3.0, 3.0), (-80, -110, -70), rotation=np.radians(7)),
}


def _nilearn(volume, affine, target, order):
    moved = resample_to_img(nib.Nifti1Image(volume, affine),
                            nib.Nifti1Image(np.zeros(target.shape[:3], np.uint8), target.affine),
                            interpolation="nearest" if order == 0 else "linear",
                            force_resample=True, copy_header=True)
    return np.asarray(moved.dataobj)


def _both(atlas, target, monkeypatch):
    ours = base._resampled_maps(atlas, target, 25.0)
    monkeypatch.setattr(base, "_on_grid", _nilearn)
    reference = base._resampled_maps(atlas, target, 25.0)
    monkeypatch.undo()
    return ours, reference


@pytest.fixture(scope="module")
def label_atlas(tmp_path_factory):
    """Juelich's MI-4a/4p as a label image on the 2 mm MNI grid, under new names."""
    folder = tmp_path_factory.mktemp("labels")
    grid = _grid((2.0, 2.0, 2.0), (-90, -126, -72), shape=(91, 109, 91))
    masks = base.roi_masks(load_atlas("juelich"), grid)
    labels = np.zeros(grid.shape, np.int16)
    for value, key in enumerate(sorted(masks), 1):
        labels[masks[key]] = value
    nib.save(nib.Nifti1Image(labels, grid.affine), folder / "lab.nii.gz")
    pd.DataFrame({"index": [1, 2, 3, 4],
                  "name": [f"new_{roi}_{side}" for roi, side in sorted(masks)]}).to_csv(
        folder / "lab.tsv", sep="\t", index=False)
    return load_atlas(str(folder / "lab.nii.gz"), ["new_.*"])


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_probabilistic_masks_and_weights_equal_nilearns(grid, monkeypatch):
    ours, reference = _both(load_atlas("juelich"), GRIDS[grid], monkeypatch)
    assert sorted(ours) == [("mi4a", "L"), ("mi4a", "R"), ("mi4p", "L"), ("mi4p", "R")]
    for key, found in ours.items():
        assert found.mask.sum() > 20, key
        np.testing.assert_array_equal(found.mask, reference[key].mask, err_msg=str(key))
        np.testing.assert_allclose(found.weight, reference[key].weight, atol=1e-6)


@pytest.mark.parametrize("grid", sorted(GRIDS))
def test_label_masks_equal_nilearns(grid, label_atlas, monkeypatch):
    ours, reference = _both(label_atlas, GRIDS[grid], monkeypatch)
    assert len(ours) == 4
    for key, found in ours.items():
        assert found.mask.sum() > 20, key
        np.testing.assert_array_equal(found.mask, reference[key].mask, err_msg=str(key))


# Finer than the 2 mm volume below: a target voxel beside the blob's edge reads it.
FINE = _grid((0.8, 0.8, 0.8), (-60, -40, -30), shape=(70, 80, 70))


@pytest.mark.parametrize("grid", [*sorted(GRIDS), "fine"])
@pytest.mark.parametrize("order", [0, 1])
def test_only_the_regions_box_is_resampled_and_nothing_else_changes(grid, order):
    """The cropped resampling equals the full one: blobs in the volume's middle and at its
    edge (no margin to widen into), and a volume with nothing in it; on coarser grids and on
    a finer one.  Linear values may differ in float32's last bit (the box's coordinates are
    its corner's plus steps, not the grid's origin's); nearest labels are the same."""
    from nibabel.processing import resample_from_to

    rng = np.random.default_rng(3)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (-90, -126, -72)
    target = FINE if grid == "fine" else GRIDS[grid]
    seen = 0
    for corner in [(40, 50, 40), (0, 30, 60), (20, 45, 45), None]:
        volume = np.zeros((91, 109, 91), np.float32)
        if corner is not None:
            box = tuple(slice(c, c + 12) for c in corner)
            volume[box] = rng.uniform(1, 100, (12, 12, 12)).astype(np.float32)
        full = np.asarray(resample_from_to(
            nib.Nifti1Image(volume, affine), (target.shape[:3], target.affine), order=order,
            mode="constant", cval=0.0).dataobj)
        cropped = base._on_grid(volume, affine, target, order)
        assert cropped.dtype == full.dtype and cropped.shape == full.shape
        # Every voxel the full resampling reached is in the box, and nothing outside it.
        np.testing.assert_array_equal(cropped != 0, full != 0)
        if order == 0:
            np.testing.assert_array_equal(cropped, full)
        else:
            np.testing.assert_allclose(cropped, full, rtol=2.5e-7, atol=0)
        seen += int((full != 0).sum())
        if corner is None:
            assert not cropped.any()
    assert seen > 100
