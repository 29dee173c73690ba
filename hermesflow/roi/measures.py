"""Read the GLM maps inside MI-4a and MI-4p, ipsilesional and contralesional.

Per ROI and hemisphere: voxel count (ROI inside the GLM mask, lesion removed), mean effect
(scanner units), mean percent signal change, peak t, number of active voxels (z above a
threshold); per ROI, the laterality index of active voxels ``(ipsi - contra) / (ipsi +
contra)``.  The table is long: one row per ``(roi, hemi, measure)``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.errors import InputError
from hermesflow.roi.atlases import load_atlas, roi_masks

OTHER_SIDE = {"L": "R", "R": "L"}


def _data(path: str | Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float64)


def extract_roi_measures(
    maps: dict[str, str],
    mask: str,
    lesion_side: str,
    *,
    lesion_mask: str | None = None,
    atlas: str = "juelich",
    threshold: float = 25.0,
    active_z: float = 3.1,
) -> pd.DataFrame:
    """Measures of each ROI x hemisphere from the GLM ``maps`` (effect, psc, t, z paths).

    Returns
    -------
    pandas.DataFrame
        Columns ``roi, hemi, side, measure, value`` with ``hemi`` in ``ipsi`` / ``contra``
        (``bilateral`` for the laterality index ``li``).
    """
    if lesion_side not in OTHER_SIDE:
        raise InputError(None, f"lesion side {lesion_side!r} is not L or R",
                         "write L or R in participants.tsv lesion_side")
    reference = nib.load(maps["effect"])
    inside = _data(mask) > 0
    if inside.shape != reference.shape[:3]:
        raise InputError(mask, f"mask grid {inside.shape} differs from the maps' "
                         f"{reference.shape[:3]}", "use the mask of the same BOLD run")
    if lesion_mask:
        lesion = _data(lesion_mask) > 0
        if lesion.shape == inside.shape:
            inside &= ~lesion
    values = {name: _data(maps[name]) for name in ("effect", "psc", "t", "z")}
    masks = roi_masks(load_atlas(atlas), reference, threshold)
    rows = []
    sides = {"ipsi": lesion_side, "contra": OTHER_SIDE[lesion_side]}
    rois = sorted({roi for roi, _ in masks})
    for roi in rois:
        active = {}
        for hemi, side in sides.items():
            voxels = masks[(roi, side)] & inside
            n = int(voxels.sum())
            active[hemi] = int((values["z"][voxels] > active_z).sum())
            measures = {
                "n_voxels": n,
                "effect": values["effect"][voxels].mean() if n else np.nan,
                "psc": values["psc"][voxels].mean() if n else np.nan,
                "peak_t": values["t"][voxels].max() if n else np.nan,
                "n_active": active[hemi],
            }
            rows += [(roi, hemi, side, name, float(v)) for name, v in measures.items()]
        total = active["ipsi"] + active["contra"]
        li = (active["ipsi"] - active["contra"]) / total if total else np.nan
        rows.append((roi, "bilateral", "LR", "li", li))
    return pd.DataFrame(rows, columns=["roi", "hemi", "side", "measure", "value"])
