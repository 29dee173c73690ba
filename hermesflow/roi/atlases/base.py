"""What every atlas source gives: an :class:`Atlas` of :class:`Region` s, and masks on any grid.

An :class:`Atlas` is a probabilistic image (one volume per region) or a label image, plus the
regions its table names.  A source (one module each, see :mod:`hermesflow.roi.atlases`) only
*opens* an atlas: it reads the table and the header.  :func:`~.loading.prepare` then chooses
the regions (``--rois``), reads only their data, puts probabilities in percent and gives every
region a hemisphere; :func:`roi_maps` turns a prepared atlas into masks (and probability
weights) on the grid of the GLM maps, the same way for every source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from hermesflow.arrays import nonzero_box

SIDES = ("L", "R")


@dataclass(frozen=True)
class Region:
    """One region of an atlas's table.

    Attributes
    ----------
    name : str
        As the atlas's table writes it (``GM_Primary_motor_cortex_BA4a_L``).
    roi : str
        hermesflow's name of the region (lower case, digits, ``_``), shared by its two
        hemispheres: it starts the outcome names (``mi4a_ipsi_psc``).
    side : str or None
        ``"L"`` or ``"R"``; None until :func:`~.loading.prepare` finds it from the centroid.
    index : int
        Label value (label images) or 0-based volume (probabilistic images).
    side_from : str
        How the side was found: ``"name"``, ``"table"`` (a hemisphere column), ``"centroid"``
        (the region's centre of mass) or ``"midline"`` (a region spanning both hemispheres,
        split at x = 0).
    """

    name: str
    roi: str
    side: str | None
    index: int
    side_from: str = "name"

    @property
    def key(self) -> tuple[str, str]:
        return (self.roi, self.side or "")


def file_stamp(files) -> tuple:
    """``(path, size, mtime)`` of each file: a cache key that changes when a file is edited
    in place (also in worker processes forked from a parent that had it cached)."""
    stamp = []
    for file in files:
        info = os.stat(file)
        stamp.append((str(file), info.st_size, info.st_mtime_ns))
    return tuple(stamp)


@dataclass(frozen=True)
class Atlas:
    """An atlas: an image and its regions, with where it came from.

    Attributes
    ----------
    name : str
        Short name, used in output file names (``atlas-<name>``).
    image : nibabel.Nifti1Image
        Probabilistic maps (4D) or a 3D label image.  Once prepared, probabilities are in
        percent and the 4D image holds only the chosen regions' volumes.
    regions : tuple of Region
        The regions (all of the table's when opened; the chosen ones, each with a side, when
        prepared).
    kind : str
        ``"probabilistic"`` or ``"dseg"``.
    source : str
        The image file, for provenance and error messages.
    templates : tuple of str
        Templates the atlas may be used in (``tpl-``/``space-``); empty if it does not say.
    files : tuple of str
        Every file the atlas is read from (image, table, sidecar): the cache keys on them.
    table : str
        The file naming the regions (error messages).
    default_rois : tuple of str
        Region names or patterns used when ``--rois`` is not given; empty: every region.
    values : str
        ``"percent"`` or ``"0-1"`` (probabilistic atlases, detected when prepared).
    prepared : bool
        Whether :func:`~.loading.prepare` made it ready for :func:`roi_maps`.
    """

    name: str
    image: nib.Nifti1Image
    regions: tuple[Region, ...]
    kind: str
    source: str
    templates: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    table: str = ""
    default_rois: tuple[str, ...] = ()
    values: str = ""
    prepared: bool = False

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [region.key for region in self.regions]


@dataclass(frozen=True)
class AtlasSource:
    """A kind of atlas hermesflow reads: a module of this package with a ``SOURCE``.

    ``claims(spec)`` says whether the source reads ``--atlas spec`` (a name or a path);
    sources are asked in ``priority`` order (lowest first) and the first that claims it opens
    it with ``open(spec)``.
    """

    name: str
    claims: Callable[[str], bool]
    open: Callable[[str], Atlas]
    label: Callable[[str], str]
    priority: int = 50
    # A source read by its name (``--atlas juelich``) rather than from a file.
    by_name: bool = False


@dataclass(frozen=True)
class RoiMap:
    """One region on the target grid: its voxels and their atlas probability (0-1)."""

    mask: np.ndarray
    weight: np.ndarray


def _hemisphere(target: nib.Nifti1Image, side: str) -> np.ndarray:
    """Voxels of the target grid left (x < 0) or right (x > 0) of the midline."""
    ijk = np.indices(target.shape[:3]).reshape(3, -1).T
    x = nib.affines.apply_affine(target.affine, ijk)[:, 0].reshape(target.shape[:3])
    return x < 0 if side == "L" else x > 0


# Masks already computed in this process, by (atlas object, grid, threshold).  Every session
# of a study is on the same grid, so a worker resamples each atlas once, not once per session
# (the resampling was 80 % of an ROI node).  ``load_atlas`` gives the same prepared object for
# the same files (size and mtime), and a new one when a file is edited; the entry keeps its
# atlas alive, so the ``id`` in the key cannot be reused while the entry exists.
_MASKS: dict[tuple, tuple[Atlas, dict]] = {}
_MASKS_KEPT = 8


def roi_maps(atlas: Atlas, target: nib.Nifti1Image,
             threshold: float = 25.0) -> dict[tuple[str, str], RoiMap]:
    """Each ``(roi, side)`` of a prepared atlas on the grid of ``target``.

    Probabilistic maps are resampled (linear) to the target grid, thresholded at
    ``threshold`` percent, and each voxel goes to the region most likely there, so that
    neighbouring regions (4a and 4p) never share a voxel; the weight is the probability
    (0-1).  Label images are resampled nearest-neighbour (weight 1).  Regions split at the
    midline keep their own hemisphere's half.  Computed once per atlas, grid and threshold in
    a process; the arrays are read-only because they are shared.
    """
    if not atlas.prepared:
        raise ValueError("roi_maps needs a prepared atlas (hermesflow.roi.atlases.load_atlas)")
    key = (id(atlas), tuple(target.shape[:3]), np.asarray(target.affine, np.float64).tobytes(),
           float(threshold))
    if key not in _MASKS:
        found = _resampled_maps(atlas, target, threshold)
        for region in found.values():
            region.mask.setflags(write=False)
            region.weight.setflags(write=False)
        while len(_MASKS) >= _MASKS_KEPT:
            _MASKS.pop(next(iter(_MASKS)))
        _MASKS[key] = (atlas, found)
    return dict(_MASKS[key][1])


def _on_grid(volume: np.ndarray, affine: np.ndarray, target: nib.Nifti1Image,
             order: int) -> np.ndarray:
    """One 3D volume of the atlas resampled to the grid of ``target`` (zero outside the
    atlas's field of view): nibabel's ``resample_from_to``, the same ``scipy.ndimage`` call
    nilearn's ``resample_to_img`` makes, without importing nilearn into a worker that needs
    nothing else of it (half a second per worker, most of an atlas re-run's first node).

    Only the box of the target grid that can receive a nonzero value is resampled: the box
    of the volume's nonzero voxels, widened by the voxel that linear interpolation reads
    beside them, mapped onto the target grid.  Every other target voxel would read zeros (or
    fall outside the atlas), so it stays zero; a region of a probabilistic atlas covers a few
    percent of the grid (Juelich's four motor maps on a 2 mm grid: 0.26 -> 0.2 s in a fresh
    process, the rest being the first touches of its memory).  The box's coordinates start at
    its corner, so a linear value may differ from the whole grid's in float32's last bit.
    """
    from nibabel.processing import resample_from_to

    box = _target_box(nonzero_box(volume, margin=1), affine, target)
    if box is None:
        return np.zeros(target.shape[:3], volume.dtype)
    corner = nib.affines.apply_affine(target.affine, [part.start for part in box])
    sub_affine = target.affine.copy()
    sub_affine[:3, 3] = corner
    shape = tuple(part.stop - part.start for part in box)
    moved = np.asarray(resample_from_to(nib.Nifti1Image(volume, affine), (shape, sub_affine),
                                        order=order, mode="constant", cval=0.0).dataobj)
    found = np.zeros(target.shape[:3], moved.dtype)
    found[box] = moved
    return found


def _target_box(box: tuple[slice, ...] | None, affine: np.ndarray,
                target: nib.Nifti1Image) -> tuple[slice, ...] | None:
    """The box of ``target``'s grid whose voxels map into ``box`` of a volume with
    ``affine`` (a voxel more on each side for rounding); None if none do."""
    if box is None:
        return None
    ends = [(part.start, part.stop - 1) for part in box]
    corners = np.array([[ends[0][i], ends[1][j], ends[2][k]]
                        for i in (0, 1) for j in (0, 1) for k in (0, 1)], np.float64)
    to_target = np.linalg.inv(target.affine) @ affine
    mapped = nib.affines.apply_affine(to_target, corners)
    low = np.maximum(np.floor(mapped.min(axis=0)).astype(int) - 1, 0)
    high = np.minimum(np.ceil(mapped.max(axis=0)).astype(int) + 1,
                      np.array(target.shape[:3]) - 1)
    if np.any(low > high):
        return None
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(low, high, strict=True))


def _resampled_maps(atlas: Atlas, target: nib.Nifti1Image,
                    threshold: float) -> dict[tuple[str, str], RoiMap]:
    halves = {side: _hemisphere(target, side) for side in SIDES
              if any(r.side_from == "midline" and r.side == side for r in atlas.regions)}
    affine = atlas.image.affine
    if atlas.kind == "probabilistic":
        prob = np.asarray(atlas.image.dataobj, dtype=np.float32)
        if prob.ndim == 3:
            prob = prob[..., None]
        layers = []
        for region in atlas.regions:
            # Linear: a probability between voxels is the weighted mean of theirs.
            layer = _on_grid(prob[..., region.index], affine, target, order=1)
            layers.append(layer * halves[region.side] if region.side_from == "midline"
                          else layer)
        stack = np.stack(layers, axis=-1)
        winner = np.argmax(stack, axis=-1)
        above = stack.max(axis=-1) >= threshold
        return {region.key: RoiMap(above & (winner == i), stack[..., i] / 100.0)
                for i, region in enumerate(atlas.regions)}
    # Nearest: a label is never averaged with its neighbour's.
    labels = _on_grid(np.asarray(atlas.image.dataobj), affine, target, order=0)
    found = {}
    for region in atlas.regions:
        mask = labels == region.index
        if region.side_from == "midline":
            mask &= halves[region.side]
        found[region.key] = RoiMap(mask, mask.astype(np.float32))
    return found


def roi_masks(atlas: Atlas, target: nib.Nifti1Image,
              threshold: float = 25.0) -> dict[tuple[str, str], np.ndarray]:
    """Binary masks of each ``(roi, side)`` on the grid of ``target`` (see :func:`roi_maps`)."""
    return {key: found.mask for key, found in roi_maps(atlas, target, threshold).items()}
