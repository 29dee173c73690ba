"""The per-atlas z-map figure (matplotlib only) places every voxel where nilearn would.

A synthetic map with a known blob and a ROI mask, on a RAS grid and on the same grid flipped
left-right (what some writers store): the drawn panels hold exactly the supra-threshold voxels
of the nearest slice, at their world coordinates, with the outline around the ROI.
"""

from __future__ import annotations

import base64
import io

import nibabel as nib
import numpy as np
import pytest
from matplotlib.image import imread

from hermesflow.derivatives import slices
from hermesflow.derivatives.session_report import zmap_figure
from hermesflow.derivatives.writing import copy_file

AFFINE = np.array([[4.0, 0, 0, -80], [0, 4.0, 0, -116], [0, 0, 4.0, -78], [0, 0, 0, 1]])


def _volume() -> tuple[np.ndarray, np.ndarray]:
    z = np.zeros((41, 50, 43), np.float32)
    z[10:13, 20:24, 30] = 6.0      # a blob at world x -40..-32, y -36..-24, z 42
    z[30, 25, 30] = -5.0           # one deactivated voxel
    z[30, 30, 30] = 2.0            # below the threshold: not drawn
    roi = np.zeros(z.shape, bool)
    roi[9:14, 19:25, 29:32] = True
    return z, roi


def _overlay(figure, panel: int = 0):
    """The stat image of a panel (the second image when a background is drawn)."""
    return figure.axes[panel].get_images()[-1]


def test_axial_grid_places_voxels_at_their_world_coordinates():
    z, _ = _volume()
    grid = slices.AxialGrid.from_image(nib.Nifti1Image(z, AFFINE))
    assert grid.index(42.0) == 30 and grid.index(43.9) == 30 and grid.index(500.0) is None
    left, right, bottom, top = grid.extent()
    assert (left, right) == (-82.0, -80 + 40 * 4 + 2.0)
    assert (bottom, top) == (-118.0, -116 + 49 * 4 + 2.0)
    xs, ys = grid.centres()
    world = nib.affines.apply_affine(AFFINE, [10, 20, 30])
    assert (xs[10], ys[20]) == (world[0], world[1])


def test_flipped_grid_draws_the_same_picture():
    z, roi = _volume()
    flip = AFFINE.copy()
    flip[0, 0], flip[0, 3] = -4.0, 80.0   # x runs right to left; same world positions
    flipped = nib.Nifti1Image(z[::-1].copy(), flip)
    ras = slices.AxialGrid.from_image(nib.Nifti1Image(z, AFFINE))
    other = slices.AxialGrid.from_image(flipped)
    np.testing.assert_array_equal(ras.data, other.data)
    np.testing.assert_array_equal(ras.origin, other.origin)
    np.testing.assert_array_equal(slices.ras(roi[::-1], flip), roi)


def test_panels_hold_the_supra_threshold_voxels_of_the_nearest_slice():
    z, roi = _volume()
    grid = slices.AxialGrid.from_image(nib.Nifti1Image(z, AFFINE))
    figure = slices.axial_cuts(grid, [43.0, 10.0], 3.1, "t", {"tab:blue": [roi]})
    shown = _overlay(figure, 0).get_array()
    assert shown.count() == 3 * 4 + 1, "the blob and the deactivated voxel, nothing else"
    np.testing.assert_array_equal(np.ma.getdata(shown)[~np.ma.getmaskarray(shown)],
                                  z[:, :, 30].T[np.abs(z[:, :, 30].T) >= 3.1])
    assert _overlay(figure, 1).get_array().count() == 0, "z = 10 mm holds no activation"
    contours = [c for c in figure.axes[0].collections if c.get_paths()]
    assert contours, "the ROI outline is drawn on the slice it crosses"
    vertices = np.concatenate([p.vertices for c in contours for p in c.get_paths()])
    # Half-way between the ROI's edge voxel centres (x -44 and -28 mm) and their neighbours.
    assert (vertices[:, 0].min(), vertices[:, 0].max()) == (-46.0, -26.0)
    assert (vertices[:, 1].min(), vertices[:, 1].max()) == (-42.0, -18.0)
    assert not [c for c in figure.axes[1].collections if c.get_paths()]


def test_zmap_figure_cuts_through_the_roi_and_draws_the_background(tmp_path):
    z, roi = _volume()
    path = tmp_path / "z.nii.gz"
    nib.save(nib.Nifti1Image(z, AFFINE), path)
    background = np.zeros((50, 60, 50), np.int16)
    background[5:45, 5:55, 5:45] = np.linspace(50, 150, 40).astype(np.int16)[:, None, None]
    template = tmp_path / "template.nii.gz"
    nib.save(nib.Nifti1Image(background, np.diag([4.0, 4.0, 4.0, 1.0]) @ np.array(
        [[1, 0, 0, -25], [0, 1, 0, -30], [0, 0, 1, -25], [0, 0, 0, 1.0]])), template)
    uri, cuts = zmap_figure(str(path), {("mi4a", "left"): roi}, {"mi4a": "tab:blue"},
                            str(template))
    assert cuts == [42.0], "the ROI's centroid height"
    pixels = imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    rgb = pixels[..., :3]
    red = (rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)
    grey = (np.ptp(rgb, axis=-1) < 0.02) & (rgb[..., 0] > 0.2) & (rgb[..., 0] < 0.95)
    assert red.sum() > 50 and grey.sum() > 1000


def test_oblique_grid_is_left_to_nilearn():
    oblique = AFFINE.copy()
    oblique[:3, :3] = AFFINE[:3, :3] @ np.array(
        [[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
    assert slices.AxialGrid.from_image(nib.Nifti1Image(np.zeros((4, 4, 4)), oblique)) is None


@pytest.mark.parametrize("same", [True, False])
def test_copy_leaves_an_identical_target_alone(tmp_path, same):
    source, target = tmp_path / "a.bin", tmp_path / "b.bin"
    source.write_bytes(b"maps" * 1000)
    target.write_bytes(b"maps" * 1000 if same else b"spam" * 1000)
    before = target.stat().st_ino
    copy_file(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert (target.stat().st_ino == before) is same, "rewritten only when it differed"
