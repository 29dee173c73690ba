"""From an opened atlas to one ready for :func:`~.base.roi_maps`, the same for every source.

:func:`prepare` checks the template against the maps' space, chooses the regions (``--rois``,
else the source's default), checks that the table matches the image's labels or volumes,
reads only the chosen regions' data, puts probabilities in percent (an atlas whose values are
all within 0-1 is read as fractions; what was found is kept in ``Atlas.values``) and gives
every region a hemisphere: from its name or table, else from its centroid (x < 0 is left), or,
for a region lying on both sides of the midline, one region per side.
"""

from __future__ import annotations

import contextlib
import dataclasses

import nibabel as nib
import numpy as np

from hermesflow.derivatives.writing import stream_volumes
from hermesflow.errors import InputError
from hermesflow.roi.atlases.base import SIDES, Atlas, Region
from hermesflow.roi.atlases.regions import listing, select_regions

# A region with at least this share of its weight on each side of x = 0 is split at the midline.
MIDLINE_SHARE = 0.1
_LISTED = 12


def template_name(space: str) -> str:
    """``"MNI152NLin2009cAsym:res-2"`` -> ``"MNI152NLin2009cAsym"``."""
    return space.split(":")[0].removeprefix("tpl-").removeprefix("space-")


def check_space(atlas: Atlas, space: str | None) -> None:
    """An atlas that says it is in another template than the maps' is an input error."""
    if not space or not atlas.templates:
        return
    wanted = template_name(space)
    if wanted not in atlas.templates:
        raise InputError(atlas.source, f"atlas is in template {' or '.join(atlas.templates)} "
                         f"but the maps are in {wanted}",
                         f"use the atlas in tpl-{wanted} (TemplateFlow has most atlases in "
                         "several templates)")


def _few(values) -> str:
    values = sorted(values)
    shown = ", ".join(str(v) for v in values[:_LISTED])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _LISTED else "")


def _labels(atlas: Atlas) -> np.ndarray:
    data = np.asarray(atlas.image.dataobj)
    data = data.reshape(data.shape[:3]) if data.ndim == 4 else data
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.allclose(data, rounded):
            raise InputError(atlas.source, "label image holds non-integer values",
                             "give a label image (dseg), or name a probabilistic atlas "
                             "*_probseg.nii.gz")
        data = rounded.astype(np.int64)
    image_labels = set(np.unique(data).tolist()) - {0}
    table_labels = {region.index for region in atlas.regions}
    missing, unnamed = table_labels - image_labels, image_labels - table_labels
    if missing or unnamed:
        problem = "; ".join(part for part in (
            missing and f"label(s) {_few(missing)} of the table are not in the image",
            unnamed and f"label(s) {_few(unnamed)} of the image are not in the table") if part)
        raise InputError(atlas.table, f"table does not match the image {atlas.source}: "
                         f"{problem}", "use the label table written for this image")
    return data


def _volume_base(atlas: Atlas) -> int:
    """0 if the table's indices are 0-based volumes, 1 if they run from 1 (label style)."""
    n_volumes = atlas.image.shape[3] if atlas.image.ndim == 4 else 1
    indices = [region.index for region in atlas.regions]
    if len(set(indices)) != len(indices):
        raise InputError(atlas.table, "the table names one volume twice",
                         "give each volume one row")
    if indices and min(indices) >= 1 and max(indices) == n_volumes:
        return 1
    if indices and (min(indices) < 0 or max(indices) >= n_volumes):
        raise InputError(atlas.table, f"table does not match the image {atlas.source}: "
                         f"indices {min(indices)}-{max(indices)} for {n_volumes} volume(s)",
                         "number the volumes 0 to N-1 (or 1 to N), one row each")
    return 0


def _volumes(atlas: Atlas, volumes: list[int]) -> np.ndarray:
    """The chosen volumes only (slicing the proxy reads a compressed file up to the last)."""
    if atlas.image.ndim == 3:
        return np.asarray(atlas.image.dataobj, dtype=np.float32)[..., None]
    proxy, shape = atlas.image.dataobj, atlas.image.shape
    if not nib.is_proxy(proxy):
        return np.asarray(proxy[..., volumes], dtype=np.float32)
    # Streamed through ISA-L up to the last volume wanted (nibabel's zlib read of the same
    # volumes took 0.45 s of each run's atlas check for Juelich's 4D map).
    columns: dict[int, list[int]] = {}  # volume -> its columns (a volume may be asked twice)
    for k, v in enumerate(volumes):
        columns.setdefault(v, []).append(k)
    block, last = np.empty((*shape[:3], len(volumes)), np.float32), max(columns)
    with contextlib.closing(stream_volumes(atlas.image, atlas.source)) as stream:
        for v, volume in enumerate(stream):
            for k in columns.get(v, ()):
                block[..., k] = volume.reshape(shape[:3], order="F")
            if v == last:
                break
    slope, inter = float(proxy.slope), float(proxy.inter)
    if (slope, inter) == (1.0, 0.0):
        return block
    # Scaled in float64, as the BOLD reader scales (glm/bold.py), then stored as float32.
    return (block.astype(np.float64) * slope + inter).astype(np.float32)


def _side_weights(weights: np.ndarray, affine: np.ndarray) -> tuple[float, float, float]:
    """Weight left and right of x = 0, and the weighted centroid's x."""
    ijk = np.argwhere(weights > 0)
    w = weights[tuple(ijk.T)].astype(np.float64)
    x = nib.affines.apply_affine(affine, ijk)[:, 0]
    total = w.sum()
    return float(w[x < 0].sum()), float(w[x > 0].sum()), float((w * x).sum() / total)


def _with_sides(atlas: Atlas, regions: tuple[Region, ...], weights_of) -> list[Region]:
    """Regions with a side each: those without one get it from where their weight lies."""
    sided = []
    for region in regions:
        if region.side is not None:
            sided.append(region)
            continue
        weights = weights_of(region)
        if not (weights > 0).any():
            raise InputError(atlas.source, f"region {region.name!r} has no voxel in the image",
                             "remove it from the table or fix the image")
        left, right, centre = _side_weights(weights, atlas.image.affine)
        total = left + right
        if total and min(left, right) / total >= MIDLINE_SHARE:
            sided += [dataclasses.replace(region, side=side, side_from="midline")
                      for side in SIDES]
        else:
            sided.append(dataclasses.replace(region, side="L" if centre < 0 else "R",
                                             side_from="centroid"))
    keys: dict[tuple[str, str], Region] = {}
    for region in sided:
        if region.key in keys:
            raise InputError(atlas.table, f"regions {keys[region.key].name!r} and "
                             f"{region.name!r} are both {region.roi} on side {region.side}",
                             "give them different names (or choose one with --rois)")
        keys[region.key] = region
    return sorted(sided, key=lambda r: (r.roi, r.side))


def prepare(atlas: Atlas, rois: list[str] | tuple[str, ...] | None = None,
            space: str | None = None) -> Atlas:
    """The atlas reduced to the chosen regions, checked, in percent, each region with a side.

    Parameters
    ----------
    rois
        Region names or regular expressions (``--rois``); None or empty: the source's
        default regions (Juelich: BA4a and BA4p), else all of them.
    space
        The maps' space (``config.workflow.space``); an atlas in another template is refused.
    """
    check_space(atlas, space)
    if not atlas.regions:
        raise InputError(atlas.table, "label table names no region", "add rows index, name")
    chosen = select_regions(atlas.regions, list(rois or atlas.default_rois), atlas.source)
    if atlas.kind == "dseg":
        labels = _labels(atlas)
        regions = _with_sides(atlas, chosen, lambda r: labels == r.index)
        image = nib.Nifti1Image(labels.astype(np.int32), atlas.image.affine)
        return dataclasses.replace(atlas, image=image, regions=tuple(regions), prepared=True)
    base = _volume_base(atlas)
    volumes = sorted({region.index - base for region in chosen})
    data = _volumes(atlas, volumes)
    # Probabilities in 0-1 would give no voxel at a threshold in percent: detect and rescale.
    fractions = float(data.max()) <= 1.0
    if fractions:
        data = data * 100.0
    position = {volume: i for i, volume in enumerate(volumes)}
    reindexed = tuple(dataclasses.replace(r, index=position[r.index - base]) for r in chosen)
    regions = _with_sides(atlas, reindexed, lambda r: data[..., r.index])
    if not regions:
        raise InputError(atlas.source, f"no region chosen (the atlas has: "
                         f"{listing(atlas.regions)})", "choose regions with --rois")
    image = nib.Nifti1Image(data.astype(np.float32, copy=False), atlas.image.affine)
    return dataclasses.replace(atlas, image=image, regions=tuple(regions), prepared=True,
                               values="0-1" if fractions else "percent")
