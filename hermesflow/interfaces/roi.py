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
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.atlases import load_atlas, roi_masks
from hermesflow.derivatives.writing import write_tsv
from hermesflow.errors import InputError

OTHER_SIDE = {"L": "R", "R": "L"}


def lesion_side_from_mask(lesion_mask: str | Path) -> str:
    """``L`` or ``R``: the hemisphere (world x < 0 is left) holding most lesion voxels."""
    img = nib.load(lesion_mask)
    ijk = np.argwhere(np.asarray(img.dataobj) > 0)
    if len(ijk) == 0:
        raise InputError(lesion_mask, "lesion mask is empty",
                         "give lesion_side (L/R) in participants.tsv or fix the mask")
    x = nib.affines.apply_affine(img.affine, ijk)[:, 0]
    return "L" if (x < 0).sum() >= (x >= 0).sum() else "R"


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


class _ROIMeasuresInputSpec(BaseInterfaceInputSpec):
    effect = File(exists=True, mandatory=True)
    psc = File(exists=True, mandatory=True)
    t = File(exists=True, mandatory=True)
    z = File(exists=True, mandatory=True)
    mask = File(exists=True, mandatory=True)
    lesion_mask = traits.Either(None, File(exists=True), default=None, usedefault=True)
    lesion_side = traits.Str(mandatory=True, desc="L or R")
    atlas = traits.Str("juelich", usedefault=True)
    threshold = traits.Float(25.0, usedefault=True)
    active_z = traits.Float(3.1, usedefault=True)


class _ROIMeasuresOutputSpec(TraitedSpec):
    table = File(exists=True, desc="long table: roi, hemi, side, measure, value")


class ROIMeasures(SimpleInterface):
    """Extract the ROI measures of one session (see :func:`extract_roi_measures`)."""

    input_spec = _ROIMeasuresInputSpec
    output_spec = _ROIMeasuresOutputSpec

    def _run_interface(self, runtime):
        maps = {name: getattr(self.inputs, name) for name in ("effect", "psc", "t", "z")}
        table = extract_roi_measures(
            maps, self.inputs.mask, self.inputs.lesion_side,
            lesion_mask=self.inputs.lesion_mask, atlas=self.inputs.atlas,
            threshold=self.inputs.threshold, active_z=self.inputs.active_z,
        )
        self._results["table"] = str(write_tsv(Path(runtime.cwd) / "roi.tsv", table))
        return runtime
