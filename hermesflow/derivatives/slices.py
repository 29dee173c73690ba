"""A statistical map's axial cuts over the template, as an inline SVG of voxel images.

Every atlas a lab tries redraws this figure for every session, and that redraw was most of an
atlas re-run: nilearn's ``plot_stat_map`` cost 0.2-0.3 s a page, a matplotlib figure of the
same cuts 0.07 s (its layout, contours and PNG encoding of a 600-pixel canvas), plus importing
the plotting stack in every worker.  The picture itself is small: per cut, the template slice in
grey and the map's supra-threshold voxels on nilearn's diverging colour map.  Here each of those
slices becomes a PNG at its own voxel resolution (a few thousand pixels, encoded by Pillow) and
the browser scales and stacks them in an SVG whose coordinates are world millimetres: the map's
voxels stay crisp (``image-rendering: pixelated``, as nilearn draws a stat map with nearest
interpolation), the template is smoothed, and each ROI outline is a path along the edges of
exactly the voxels the measures read.  A page costs a few milliseconds.

Only maps on axis-aligned grids are drawn here (hermesflow writes its maps on the template's
grids); any other goes back to nilearn (:func:`hermesflow.derivatives.session_report.zmap_figure`).
The SVG's y axis points down, so world (x, y) is drawn at (x, -y): anterior up, and the left
hemisphere on the left (neurological convention, as nilearn draws).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html
import io
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from hermesflow.derivatives.writing import read_whole, write_bytes

PANEL_PX = 190       # width of one cut on the page
TITLE_PX = 20        # the title's band above the cuts
BAR_PX = 56          # the colour bar's column right of the cuts


@dataclass(frozen=True)
class AxialGrid:
    """A volume reoriented to RAS with axis-aligned voxels: data and the world position of
    voxel (0, 0, 0) and the voxel sizes (mm)."""

    data: np.ndarray
    origin: np.ndarray
    zooms: np.ndarray

    @classmethod
    def from_image(cls, image: nib.spatialimages.SpatialImage,
                   dtype=np.float32) -> AxialGrid | None:
        """The grid of ``image``, or None when its voxel axes are not the world's axes."""
        geometry = ras_geometry(image)
        if geometry is None:
            return None
        origin, zooms, _ = geometry
        return cls(np.asarray(nib.as_closest_canonical(image).dataobj, dtype=dtype), origin,
                   zooms)

    def index(self, z_mm: float) -> int | None:
        """The axial slice nearest to the world height ``z_mm`` (None when outside)."""
        k = int(round((z_mm - self.origin[2]) / self.zooms[2]))
        return k if 0 <= k < self.data.shape[2] else None

    def extent(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) of an axial slice: its outer voxel edges in mm."""
        (x0, y0), (dx, dy) = self.origin[:2], self.zooms[:2]
        nx, ny = self.data.shape[:2]
        return (x0 - dx / 2, x0 + (nx - 0.5) * dx, y0 - dy / 2, y0 + (ny - 0.5) * dy)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """World x and y (mm) of the voxel centres along the first two axes."""
        nx, ny = self.data.shape[:2]
        return (self.origin[0] + self.zooms[0] * np.arange(nx),
                self.origin[1] + self.zooms[1] * np.arange(ny))


def ras_geometry(image) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]] | None:
    """Origin, voxel sizes and shape of ``image`` reoriented as
    :func:`nibabel.as_closest_canonical` does, from its header alone; None when its voxel
    axes are not the world's axes."""
    ornt = nib.orientations.io_orientation(image.affine)
    affine = image.affine @ nib.orientations.inv_ornt_aff(ornt, image.shape[:3])
    linear = affine[:3, :3]
    if not np.allclose(linear, np.diag(np.diag(linear)), atol=1e-4 * np.abs(linear).max()):
        return None
    shape = [0, 0, 0]
    for axis, target in enumerate(ornt[:, 0].astype(int)):
        shape[target] = image.shape[axis]
    return affine[:3, 3].copy(), np.diag(linear).copy(), tuple(shape)


def ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``array`` (on the grid of ``affine``) in the voxel order of
    :func:`nibabel.as_closest_canonical`, as :class:`AxialGrid` holds its data."""
    return nib.orientations.apply_orientation(array, nib.orientations.io_orientation(affine))


def cache_dir() -> Path:
    """hermesflow's folder in the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hermesflow"


@functools.lru_cache(maxsize=2)
def background(path: str) -> AxialGrid | None:
    """The template on its RAS grid, once per process (every page of a worker shares it).

    The float32 voxels are also kept in the user's cache (:func:`cache_dir`), named by the
    template's path, size and modification time, and mapped from there, not read: a worker's
    first page no longer inflates and converts the 1 mm template (50 ms of each worker's first
    ROI node in an atlas re-run), and the workers share its pages.  Without a writable cache
    the template is read as before.
    """
    info = os.stat(path)
    key = hashlib.sha256(f"{os.path.abspath(path)}|{info.st_size}|{info.st_mtime_ns}".encode())
    cached = cache_dir() / f"background-{key.hexdigest()[:24]}.npy"
    geometry = ras_geometry(nib.load(path))
    if geometry is None:
        return None
    origin, zooms, shape = geometry
    try:
        data = np.load(cached, mmap_mode="r")
        if data.shape == shape and data.dtype == np.float32:
            return AxialGrid(data, origin, zooms)
    except (OSError, ValueError):
        pass
    grid = AxialGrid.from_image(read_whole(path))
    grid.data.setflags(write=False)
    with contextlib.suppress(OSError):
        buffer = io.BytesIO()
        np.save(buffer, grid.data)
        write_bytes(cached, buffer.getvalue(), sync=False)
    return grid


# ColorBrewer's 11-class RdBu, red to blue.  matplotlib's ``RdBu`` is these anchors spaced
# evenly and interpolated linearly; nilearn draws stat maps with the reverse, ``RdBu_r``.  Given
# here so that a worker drawing pages does not import matplotlib (tests compare the two).
RDBU = ("#67001f", "#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de",
        "#4393c3", "#2166ac", "#053061")
# matplotlib's ``tab:`` colours (Tableau 10), which the pages' outlines are named by.
TABLEAU = {"tab:blue": "#1f77b4", "tab:orange": "#ff7f0e", "tab:green": "#2ca02c",
           "tab:red": "#d62728", "tab:purple": "#9467bd", "tab:brown": "#8c564b",
           "tab:pink": "#e377c2", "tab:gray": "#7f7f7f", "tab:olive": "#bcbd22",
           "tab:cyan": "#17becf"}


@functools.lru_cache(maxsize=1)
def stat_lut() -> np.ndarray:
    """nilearn's stat-map colour map (``RdBu_r``) as a 256 x 4 uint8 table."""
    anchors = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in RDBU[::-1]], float)
    where = np.linspace(0.0, 1.0, 256)
    positions = np.linspace(0.0, 1.0, len(anchors))
    rgb = np.stack([np.interp(where, positions, anchors[:, c]) for c in range(3)], axis=1)
    return np.column_stack([np.round(rgb), np.full(256, 255)]).astype(np.uint8)


def css_colour(name: str) -> str:
    """A colour as SVG understands it: matplotlib's ``tab:`` names become ``#rrggbb``."""
    return TABLEAU.get(name, name)


def png_uri(pixels: np.ndarray) -> str:
    """An image array (rows top to bottom; ``L``, ``LA`` or ``RGBA`` uint8) as a PNG data URI."""
    from PIL import Image

    buffer = io.BytesIO()
    # A few thousand pixels: the fastest compression costs a few hundred bytes more.
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def stat_pixels(section: np.ndarray, threshold: float, vmax: float) -> np.ndarray:
    """RGBA of one axial section (x, y): the colour map over [-vmax, vmax] where
    ``|value| >= threshold``, transparent elsewhere; rows run from anterior to posterior."""
    values = section.T[::-1]
    index = np.clip(np.round((values / (2 * vmax) + 0.5) * 255), 0, 255)
    shown = np.abs(values) >= threshold      # NaN compares False: not drawn
    pixels = stat_lut()[np.where(shown, index, 0).astype(np.intp)]
    pixels[..., 3] = np.where(shown, 255, 0)
    return pixels


def grey_pixels(section: np.ndarray) -> np.ndarray:
    """Luminance and alpha of a template section: its positive voxels from black (lowest) to
    white (highest), the rest transparent, as ``imshow`` scales a masked slice."""
    values = section.T[::-1].astype(np.float32)
    inside = values > 0
    pixels = np.zeros(values.shape + (2,), np.uint8)
    if inside.any():
        low, high = float(values[inside].min()), float(values[inside].max())
        scaled = (values - low) / (high - low) if high > low else np.ones_like(values)
        pixels[..., 0] = np.where(inside, np.round(np.clip(scaled, 0, 1) * 255), 0)
        pixels[..., 1] = np.where(inside, 255, 0)
    return pixels


def outline_path(section: np.ndarray, grid: AxialGrid) -> str:
    """SVG path data along the outer edges of the ``True`` voxels of an axial section (x, y)
    of ``grid``: every segment lies half-way between a voxel inside and one outside."""
    (x0, y0), (dx, dy) = grid.origin[:2], grid.zooms[:2]
    padded = np.pad(np.asarray(section, bool), 1)
    parts = []
    # Between x-neighbours a-1 and a (padded a and a+1): a vertical edge at x0 + (a - 0.5) dx.
    for a, j in np.argwhere(padded[1:, 1:-1] != padded[:-1, 1:-1]):
        x, y = x0 + (a - 0.5) * dx, y0 + j * dy
        parts.append(f"M{x:.6g} {-(y - dy / 2):.6g}V{-(y + dy / 2):.6g}")
    for i, b in np.argwhere(padded[1:-1, 1:] != padded[1:-1, :-1]):
        x, y = x0 + i * dx, y0 + (b - 0.5) * dy
        parts.append(f"M{x - dx / 2:.6g} {-y:.6g}H{x + dx / 2:.6g}")
    return "".join(parts)


def _layer(uri: str, extent: tuple[float, float, float, float], crisp: bool) -> str:
    left, right, bottom, top = extent
    style = ' style="image-rendering:pixelated"' if crisp else ""
    return (f'<image href="{uri}" x="{left:.6g}" y="{-top:.6g}" width="{right - left:.6g}" '
            f'height="{top - bottom:.6g}" preserveAspectRatio="none"{style}/>')


def _colour_bar(x: float, top: float, height: float, vmax: float) -> str:
    lut = stat_lut()
    stops = "".join(f'<stop offset="{f:.2f}" stop-color="#{r:02x}{g:02x}{b:02x}"/>'
                    for f, (r, g, b, _a) in zip(np.linspace(0, 1, 11),
                                                lut[np.linspace(0, 255, 11).astype(int)],
                                                strict=True))
    ticks = "".join(
        f'<text x="{x + 16}" y="{top + height * (1 - f) + 3:.1f}" font-size="9">{v:.1f}</text>'
        for f, v in ((0.0, -vmax), (0.5, 0.0), (1.0, vmax)))
    return (f'<defs><linearGradient id="zbar" x1="0" y1="1" x2="0" y2="0">{stops}'
            f'</linearGradient></defs><rect x="{x}" y="{top:.1f}" width="12" '
            f'height="{height:.1f}" fill="url(#zbar)"/>{ticks}')


def axial_svg(stat: AxialGrid, cuts_mm: list[float], threshold: float, title: str,
              outlines: dict[str, list[np.ndarray]] | None = None,
              template: AxialGrid | None = None) -> str:
    """One panel per cut: ``template`` in grey, the map where ``|value| >= threshold``, and
    each colour's outlines (masks on ``stat``'s grid, already in RAS order).

    Returns
    -------
    str
        An ``<svg>`` element to place in a page (self-contained: images are data URIs).
    """
    peak = float(np.nanmax(np.abs(stat.data))) if stat.data.size else 0.0
    vmax = max(peak, threshold)
    left, right, bottom, top = stat.extent()
    panel_h = PANEL_PX * (top - bottom) / (right - left)
    width, height = PANEL_PX * len(cuts_mm) + BAR_PX, TITLE_PX + panel_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="zmap" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
             f'font-family="sans-serif"><title>{html.escape(title)}</title>'
             f'<text x="{width / 2:.0f}" y="14" font-size="12" text-anchor="middle">'
             f'{html.escape(title)}</text>']
    for n, z_mm in enumerate(cuts_mm):
        parts.append(f'<svg class="cut" data-z="{z_mm:g}" x="{n * PANEL_PX}" y="{TITLE_PX}" '
                     f'width="{PANEL_PX}" height="{panel_h:.1f}" viewBox="{left:.6g} {-top:.6g} '
                     f'{right - left:.6g} {top - bottom:.6g}" preserveAspectRatio="none">')
        if template is not None and (kb := template.index(z_mm)) is not None:
            parts.append(_layer(png_uri(grey_pixels(template.data[:, :, kb])),
                                template.extent(), crisp=False))
        k = stat.index(z_mm)
        if k is not None:
            parts.append(_layer(png_uri(stat_pixels(stat.data[:, :, k], threshold, vmax)),
                                stat.extent(), crisp=True))
            for colour, masks in (outlines or {}).items():
                path = "".join(outline_path(mask[:, :, k], stat) for mask in masks)
                if path:
                    parts.append(f'<path class="outline" d="{path}" fill="none" '
                                 f'stroke="{css_colour(colour)}" stroke-width="1.2" '
                                 f'vector-effect="non-scaling-stroke"/>')
        parts.append("</svg>")
        parts.append(f'<text x="{n * PANEL_PX + 3}" y="{height - 4:.0f}" font-size="10">'
                     f'z={z_mm:g}</text>')
    parts.append(f'<text x="3" y="{TITLE_PX + 12}" font-size="11" font-weight="bold">L</text>'
                 f'<text x="{PANEL_PX * len(cuts_mm) - 12}" y="{TITLE_PX + 12}" '
                 f'font-size="11" font-weight="bold">R</text>')
    parts.append(_colour_bar(PANEL_PX * len(cuts_mm) + 8, TITLE_PX + 0.1 * panel_h,
                             0.8 * panel_h, vmax))
    parts.append("</svg>")
    return "".join(parts)
