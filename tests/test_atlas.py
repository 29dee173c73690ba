"""The Juelich MI-4a/4p maps: found offline, on the right side, disjoint, on any grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from hermesflow.errors import InputError
from hermesflow.roi.atlases import atlas_label, load_atlas, roi_masks


def _grid(voxel: float) -> nib.Nifti1Image:
    shape = tuple(int(n) for n in np.ceil(np.array([180, 216, 180]) / voxel))
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    return nib.Nifti1Image(np.zeros(shape, np.uint8), affine)


@pytest.mark.parametrize("voxel", [2.0, 4.0])
def test_juelich_motor_rois(voxel):
    target = _grid(voxel)
    masks = roi_masks(load_atlas("juelich"), target, threshold=25)
    assert set(masks) == {("mi4a", "L"), ("mi4a", "R"), ("mi4p", "L"), ("mi4p", "R")}
    for (roi, side), mask in masks.items():
        xyz = nib.affines.apply_affine(target.affine, np.argwhere(mask))
        centre = xyz.mean(axis=0)
        assert (centre[0] < 0) == (side == "L"), (roi, side, centre)
        # Precentral gyrus: y about -25 mm, 4a above 4p (4p sits in the depth of the sulcus).
        assert -40 < centre[1] < -10
        volume_ml = mask.sum() * voxel**3 / 1000
        assert 3 < volume_ml < 30, (roi, side, volume_ml)
    assert not (masks[("mi4a", "L")] & masks[("mi4p", "L")]).any()
    z_4a = nib.affines.apply_affine(target.affine, np.argwhere(masks[("mi4a", "L")]))[:, 2]
    z_4p = nib.affines.apply_affine(target.affine, np.argwhere(masks[("mi4p", "L")]))[:, 2]
    assert z_4a.mean() > z_4p.mean()


def test_higher_threshold_gives_smaller_rois():
    target = _grid(4.0)
    atlas = load_atlas("juelich")
    loose, strict = roi_masks(atlas, target, 10), roi_masks(atlas, target, 50)
    for key in loose:
        assert strict[key].sum() < loose[key].sum()
        assert not (strict[key] & ~loose[key]).any()


def test_custom_dseg_atlas(tmp_path):
    target = _grid(4.0)
    labels = np.zeros(target.shape, np.int16)
    labels[5:8, 20:25, 30:34] = 1
    labels[30:33, 20:25, 30:34] = 2
    path = tmp_path / "atlas-hand_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, target.affine), path)
    pd.DataFrame({"index": [1, 2], "roi": ["hand", "hand"], "hemi": ["L", "R"]}).to_csv(
        tmp_path / "atlas-hand_dseg.tsv", sep="\t", index=False)
    atlas = load_atlas(str(path))
    assert atlas.kind == "dseg" and atlas.name == atlas_label(str(path)) == "atlashanddseg"
    masks = roi_masks(atlas, target)
    assert masks[("hand", "L")].sum() == 3 * 5 * 4
    assert (masks[("hand", "R")] == (labels == 2)).all()


def test_custom_atlas_without_label_table(tmp_path):
    path = tmp_path / "mine.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), path)
    with pytest.raises(InputError, match="mine.nii.gz: atlas has no label table -- write mine.tsv"):
        load_atlas(str(path))
