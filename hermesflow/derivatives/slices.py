"""A statistical map's axial cuts over the template, drawn with matplotlib alone.

Every atlas a lab tries redraws this figure for every session, and that redraw is most of an
atlas re-run: nilearn's ``plot_stat_map`` costs 0.2-0.3 s a page, and importing
``nilearn.plotting`` and loading its MNI background another 2.5 s in each worker.  This module
draws the same picture -- the template in grey, the map above a threshold on a diverging
colour map, ROI outlines -- from numpy slices placed by world coordinates, with the
background read once per process.  Only maps on axis-aligned grids are drawn here (hermesflow
writes its maps on the template's grids); any other goes back to nilearn
(:func:`hermesflow.derivatives.session_report.zmap_figure`).
"""

from __future__ import annotations

import base64
import functools
import io
from dataclasses import dataclass

import nibabel as nib
import numpy as np

# nilearn's default for statistical maps, so the pages look the same whichever draws them.
STAT_CMAP = "RdBu_r"
PANEL_INCHES = 2.1
DPI = 90


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
        canonical = nib.as_closest_canonical(image)
        affine = canonical.affine
        linear = affine[:3, :3]
        if not np.allclose(linear, np.diag(np.diag(linear)), atol=1e-4 * np.abs(linear).max()):
            return None
        return cls(np.asarray(canonical.dataobj, dtype=dtype), affine[:3, 3].copy(),
                   np.diag(linear).copy())

    def index(self, z_mm: float) -> int | None:
        """The axial slice nearest to the world height ``z_mm`` (None when outside)."""
        k = int(round((z_mm - self.origin[2]) / self.zooms[2]))
        return k if 0 <= k < self.data.shape[2] else None

    def extent(self) -> tuple[float, float, float, float]:
        """imshow's (left, right, bottom, top) of an axial slice, voxel edges in mm."""
        (x0, y0), (dx, dy) = self.origin[:2], self.zooms[:2]
        nx, ny = self.data.shape[:2]
        return (x0 - dx / 2, x0 + (nx - 0.5) * dx, y0 - dy / 2, y0 + (ny - 0.5) * dy)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """World x and y (mm) of the voxel centres along the first two axes."""
        nx, ny = self.data.shape[:2]
        return (self.origin[0] + self.zooms[0] * np.arange(nx),
                self.origin[1] + self.zooms[1] * np.arange(ny))


def ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``array`` (on the grid of ``affine``) in the voxel order of
    :func:`nibabel.as_closest_canonical`, as :class:`AxialGrid` holds its data."""
    return nib.orientations.apply_orientation(array, nib.orientations.io_orientation(affine))


@functools.lru_cache(maxsize=2)
def background(path: str) -> AxialGrid | None:
    """The template read once per process (every page of a worker shares it)."""
    grid = AxialGrid.from_image(nib.load(path))
    if grid is not None:
        grid.data.setflags(write=False)
    return grid


def axial_cuts(stat: AxialGrid, cuts_mm: list[float], threshold: float, title: str,
               outlines: dict[str, list[np.ndarray]] | None = None,
               template: AxialGrid | None = None):
    """A figure of one panel per cut: template, the map where ``|value| >= threshold``,
    and each colour's outlines (masks on ``stat``'s grid, already in RAS order).

    Returns the matplotlib ``Figure`` (no pyplot: nothing is registered globally).
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    peak = float(np.nanmax(np.abs(stat.data))) if stat.data.size else 0.0
    norm = Normalize(-max(peak, threshold), max(peak, threshold))
    cmap = colormaps[STAT_CMAP]
    left, right, bottom, top = stat.extent()
    height = PANEL_INCHES * (top - bottom) / (right - left)
    width = PANEL_INCHES * len(cuts_mm) + 0.6
    figure = Figure(figsize=(width, height + 0.35), dpi=DPI)
    axes = figure.subplots(1, len(cuts_mm), squeeze=False)[0]
    figure.subplots_adjust(left=0.01, right=1 - 0.6 / width, bottom=0.01,
                           top=height / (height + 0.35), wspace=0.02)
    figure.suptitle(title, fontsize=9)
    xs, ys = stat.centres()
    for axis, z_mm in zip(axes, cuts_mm, strict=True):
        axis.set_axis_off()
        axis.set_aspect("equal")
        k = stat.index(z_mm)
        if template is not None and (kb := template.index(z_mm)) is not None:
            slab = template.data[:, :, kb].T
            axis.imshow(np.ma.masked_less_equal(slab, 0), cmap="gray", origin="lower",
                        extent=template.extent(), interpolation="bilinear")
        if k is not None:
            values = stat.data[:, :, k].T
            shown = np.ma.masked_where(~(np.abs(values) >= threshold), values)
            axis.imshow(shown, cmap=cmap, norm=norm, origin="lower", extent=stat.extent(),
                        interpolation="nearest")
            for colour, masks in (outlines or {}).items():
                for mask in masks:
                    section = mask[:, :, k].T
                    if section.any():
                        axis.contour(xs, ys, section.astype(np.float32), levels=[0.5],
                                     colors=colour, linewidths=1)
        axis.set_xlim(*stat.extent()[:2])
        axis.set_ylim(*stat.extent()[2:])
        axis.text(0.02, 0.02, f"z={z_mm:g}", transform=axis.transAxes, fontsize=8)
    # Neurological convention, as nilearn draws: the left hemisphere on the left.
    axes[0].text(0.0, 0.95, "L", transform=axes[0].transAxes, fontsize=9, weight="bold")
    axes[-1].text(0.95, 0.95, "R", transform=axes[-1].transAxes, fontsize=9, weight="bold")
    bar = figure.add_axes((1 - 0.45 / width, 0.1, 0.12 / width, 0.7 * height / (height + 0.35)))
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=bar)
    bar.tick_params(labelsize=7)
    return figure


def png_uri(figure) -> str:
    """A figure (no pyplot) as a PNG data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
