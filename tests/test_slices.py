"""The per-atlas z-map figure (an SVG of voxel images) places every voxel where nilearn would.

A synthetic map with a known blob and a ROI mask, on a RAS grid and on the same grid flipped
left-right (what some writers store): each cut holds exactly the supra-threshold voxels of the
nearest slice, on nilearn's colour map, with the outline along the ROI's voxel edges; headless
Chromium draws the blob and the template where their world coordinates say.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from hermesflow.derivatives import slices
from hermesflow.derivatives.session_report import zmap_figure
from hermesflow.derivatives.writing import copy_file

AFFINE = np.array([[4.0, 0, 0, -80], [0, 4.0, 0, -116], [0, 0, 4.0, -78], [0, 0, 0, 1]])
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _volume() -> tuple[np.ndarray, np.ndarray]:
    z = np.zeros((41, 50, 43), np.float32)
    z[10:13, 20:24, 30] = 6.0      # a blob at world x -40..-32, y -36..-24, z 42
    z[30, 25, 30] = -5.0           # one deactivated voxel
    z[30, 30, 30] = 2.0            # below the threshold: not drawn
    roi = np.zeros(z.shape, bool)
    roi[9:14, 19:25, 29:32] = True
    return z, roi


def _cuts(svg: str) -> list[str]:
    """The inner ``<svg class="cut">`` elements, in order."""
    return re.findall(r'<svg class="cut".*?</svg>', svg)


def _pixels(element: str) -> np.ndarray:
    uri = re.search(r'href="data:image/png;base64,([^"]+)"', element).group(1)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGBA"))


def _stat_layer(cut: str) -> str:
    return re.search(r'<image [^>]*image-rendering:pixelated[^>]*/>', cut).group(0)


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


def test_cuts_hold_the_supra_threshold_voxels_of_the_nearest_slice():
    z, roi = _volume()
    grid = slices.AxialGrid.from_image(nib.Nifti1Image(z, AFFINE))
    svg = slices.axial_svg(grid, [43.0, 10.0], 3.1, "t", {"tab:blue": [roi]})
    first, second = _cuts(svg)
    assert 'data-z="43"' in first and 'data-z="10"' in second
    pixels = _pixels(_stat_layer(first))
    # Rows run from anterior (top) to posterior, columns from left to right.
    expected = (np.abs(z[:, :, 30]) >= 3.1).T[::-1]
    np.testing.assert_array_equal(pixels[..., 3] > 0, expected)
    assert (pixels[..., 3] > 0).sum() == 3 * 4 + 1, "the blob and the deactivated voxel"
    # nilearn's colour map over [-6, 6]: the blob at its top, -5 near its bottom.
    lut = colormaps["RdBu_r"]
    row, col = 49 - 20, 10
    np.testing.assert_allclose(pixels[row, col] / 255, lut(1.0), atol=1 / 255)
    np.testing.assert_allclose(pixels[49 - 25, 30] / 255, lut(0.5 - 5 / 12), atol=3 / 255)
    assert (_pixels(_stat_layer(second))[..., 3] == 0).all(), "z = 10 mm holds no activation"
    path = re.search(r'<path class="outline" d="([^"]+)"[^>]*stroke="#1f77b4"', first).group(1)
    x, y = _outline_points(path)
    # Half-way between the ROI's edge voxel centres (x -44 and -28 mm) and their neighbours;
    # SVG's y axis points down, so world y is -y.
    assert (x.min(), x.max()) == (-46.0, -26.0)
    assert (-y.max(), -y.min()) == (-42.0, -18.0)
    assert 'class="outline"' not in second, "the ROI does not reach z = 10 mm"


def _outline_points(path: str) -> tuple[np.ndarray, np.ndarray]:
    """End points of an outline's segments (``M x y V y2`` and ``M x y H x2``)."""
    xs, ys = [], []
    for x, y, kind, to in re.findall(r"M(\S+) (\S+?)([VH])(-?[\d.]+)", path):
        xs += [float(x), float(to) if kind == "H" else float(x)]
        ys += [float(y), float(to) if kind == "V" else float(y)]
    return np.array(xs), np.array(ys)


def test_outline_follows_the_voxel_edges():
    grid = slices.AxialGrid(np.zeros((3, 3, 1), np.float32), np.zeros(3), np.ones(3))
    square = np.zeros((3, 3), bool)
    square[1, 1] = True
    x, y = _outline_points(slices.outline_path(square, grid))
    assert len(x) == 8, "four edges around one voxel"
    assert set(x) == {0.5, 1.5} and set(y) == {-0.5, -1.5}, "voxel (1, 1), y drawn as -y"
    square[1, 2] = True
    assert len(_outline_points(slices.outline_path(square, grid))[0]) == 12, \
        "two neighbours: the shared edge is not drawn"


def _template(tmp_path) -> str:
    background = np.zeros((50, 60, 50), np.int16)
    background[5:45, 5:55, 5:45] = np.linspace(50, 150, 40).astype(np.int16)[:, None, None]
    template = tmp_path / "template.nii.gz"
    nib.save(nib.Nifti1Image(background, np.diag([4.0, 4.0, 4.0, 1.0]) @ np.array(
        [[1, 0, 0, -25], [0, 1, 0, -30], [0, 0, 1, -25], [0, 0, 0, 1.0]])), template)
    return str(template)


def _drawn(tmp_path, affine=AFFINE, template: bool = True) -> tuple[str, list[float]]:
    """zmap_figure of the synthetic map on ``affine``, its ROI outlined in blue."""
    z, roi = _volume()
    path = tmp_path / "z.nii.gz"
    nib.save(nib.Nifti1Image(z, affine), path)
    return zmap_figure(str(path), {("mi4a", "left"): roi}, {"mi4a": "tab:blue"},
                       _template(tmp_path) if template else None)


def test_zmap_figure_cuts_through_the_roi_and_draws_the_background(tmp_path):
    svg, cuts = _drawn(tmp_path)
    assert cuts == [42.0], "the ROI's centroid height"
    (cut,) = _cuts(svg)
    grey = _pixels(re.search(r"<image (?![^>]*pixelated)[^>]*/>", cut).group(0))
    inside = grey[..., 3] > 0
    assert inside.sum() == 40 * 50, "the template's brain voxels of that slice"
    assert (grey[inside, 0] == grey[inside, 2]).all(), "in grey"
    # Darkest on the left (x: 50 -> 150), as the template's values rise.
    columns = grey[..., 0].astype(int)[inside.any(axis=1)][0][5:45]
    assert columns[0] == 0 and columns[-1] == 255 and (np.diff(columns) >= 0).all()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/setup-chromium.sh)")
def test_chromium_draws_the_voxels_at_their_world_coordinates(tmp_path):
    svg, _ = _drawn(tmp_path)
    page = tmp_path / "page.html"
    page.write_text(f'<html><body style="margin:0;background:#fff">{svg}</body></html>')
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=400,300", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    left, right, bottom, top = -82.0, 82.0, -118.0, 82.0
    height = slices.PANEL_PX * (top - bottom) / (right - left)

    def at(x_mm: float, y_mm: float) -> np.ndarray:
        column = (x_mm - left) / (right - left) * slices.PANEL_PX
        row = slices.TITLE_PX + (top - y_mm) / (top - bottom) * height
        return rgb[int(row), int(column)]

    lut = colormaps["RdBu_r"]
    # The blob (6, the map's peak) and the -5 voxel, opaque over the template.
    np.testing.assert_allclose(at(-36.0, -30.0), np.array(lut(1.0)[:3]) * 255, atol=6)
    np.testing.assert_allclose(at(40.0, -16.0), np.array(lut(0.5 - 5 / 12)[:3]) * 255, atol=6)
    grey = at(0.0, 60.0)
    assert abs(grey[0] - grey[2]) < 8 and 40 < grey[0] < 250, f"template in grey, got {grey}"
    assert (at(80.5, 0.0) > 245).all(), "right of the template (x > 78 mm): the page's white"


def test_oblique_grid_is_left_to_nilearn(tmp_path):
    oblique = AFFINE.copy()
    oblique[:3, :3] = AFFINE[:3, :3] @ np.array(
        [[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
    assert slices.AxialGrid.from_image(nib.Nifti1Image(np.zeros((4, 4, 4)), oblique)) is None
    html, cuts = _drawn(tmp_path, oblique, template=False)
    assert html.startswith('<img alt="z map" src="data:image/png;base64,'), "nilearn's figure"
    assert cuts == [42.0], "the ROI's centroid height (a rotation about z keeps it)"
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(
        html.split(",", 1)[1].rstrip('">')))).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    assert red.sum() > 20, "the blob is drawn"


@pytest.mark.parametrize("same", [True, False])
def test_copy_leaves_an_identical_target_alone(tmp_path, same):
    source, target = tmp_path / "a.bin", tmp_path / "b.bin"
    source.write_bytes(b"maps" * 1000)
    target.write_bytes(b"maps" * 1000 if same else b"spam" * 1000)
    os.utime(target, (1e9, 1e9))   # written by an earlier run
    before = target.stat().st_ino
    copy_file(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert (target.stat().st_ino == before) is same, "rewritten only when it differed"


def test_copy_keeps_the_source_time_and_a_second_copy_reads_nothing(tmp_path, monkeypatch):
    source, target = tmp_path / "a.bin", tmp_path / "b.bin"
    source.write_bytes(b"maps" * 100000)
    os.utime(source, (1.5e9, 1.5e9))
    copy_file(source, target)
    assert target.stat().st_mtime == 1.5e9 and target.read_bytes() == source.read_bytes()
    monkeypatch.setattr("filecmp._do_cmp", lambda *_: pytest.fail("contents compared"))
    inode = target.stat().st_ino
    copy_file(source, target)
    assert target.stat().st_ino == inode, "size and time match: left alone"


def test_colours_are_matplotlibs():
    from matplotlib.colors import to_hex

    from hermesflow.derivatives.html import ARM_COLOURS, PALETTE

    reference = np.round(colormaps["RdBu_r"](np.linspace(0, 1, 256)) * 255)
    np.testing.assert_allclose(slices.stat_lut(), reference, atol=1)
    for name in (*PALETTE, *ARM_COLOURS.values()):
        assert slices.css_colour(name) == to_hex(name), name


def test_the_background_is_mapped_from_the_users_cache(tmp_path, monkeypatch):
    """Read once (as before) and kept as an array file: the next process maps it, and gets
    the same voxels and geometry; a damaged cache file is replaced."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    template = _template(tmp_path)
    slices.background.cache_clear()
    first = slices.background(template)
    expected = slices.AxialGrid.from_image(nib.load(template))
    assert np.array_equal(first.data, expected.data)
    cached = list((tmp_path / "cache" / "hermesflow").glob("background-*.npy"))
    assert len(cached) == 1
    slices.background.cache_clear()
    mapped = slices.background(template)
    assert isinstance(mapped.data, np.memmap)
    assert np.array_equal(mapped.data, expected.data)
    assert np.array_equal(mapped.origin, expected.origin)
    assert np.array_equal(mapped.zooms, expected.zooms)
    cached[0].write_bytes(b"not an array")
    slices.background.cache_clear()
    assert np.array_equal(slices.background(template).data, expected.data)
    slices.background.cache_clear()
