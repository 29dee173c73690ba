"""The registry of ROI measures, and their extraction from one session's GLM maps.

A measure is one function and one line::

    @roi_measure("median_psc", per="hemisphere", model=True, report=False)
    def median_psc(voxels: Voxels) -> float:
        '''Median percent signal change.'''
        return np.median(voxels["psc"]) if voxels.n_voxels else np.nan

``per="hemisphere"`` measures receive the :class:`Voxels` of one ROI in one hemisphere (the
ROI inside the brain mask, lesion removed): ``voxels[<map>]`` are the values of a GLM map
there, ``n_voxels`` their count, ``active`` the voxels whose z exceeds the active threshold.
``per="bilateral"`` measures receive :class:`Bilateral` (``ipsi`` and ``contra`` voxels).
The flags travel with the ROI table (its JSON sidecar, :func:`roi_table_sidecar`) to the group
stage: ``model`` measures are modelled by default, ``report`` measures are shown in the group
report.  The docstring's first line describes the measure in that sidecar.

The table is long: one row per ``(roi, hemi, measure)``, ROIs in name order, then ``ipsi``,
``contra`` and ``bilateral``, measures in registration order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.errors import InputError, RegistryError
from hermesflow.roi.atlases import load_atlas, roi_masks

OTHER_SIDE = {"L": "R", "R": "L"}
PER = ("hemisphere", "bilateral")
# Measure names become outcome names (``mi4p_ipsi_<name>``) and TSV values.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _data(path: str | Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float64)


class _SessionMaps:
    """The session's GLM maps by name, each read once, when a measure first asks for it."""

    def __init__(self, paths: dict[str, str], mask: str, shape: tuple[int, ...]):
        self._paths, self._mask, self._shape = paths, mask, shape
        self._data: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._data:
            if name not in self._paths:
                raise RegistryError(
                    f"an ROI measure reads the '{name}' map, which the GLM does not give to "
                    f"the ROI measures (given: {', '.join(self._paths)}) -- register it with "
                    "roi=True in hermesflow/glm/maps.py")
            data = _data(self._paths[name])
            if data.shape[:3] != self._shape:
                raise InputError(self._mask, f"mask grid {self._shape} differs from the maps' "
                                 f"{data.shape[:3]}", "use the mask of the same BOLD run")
            self._data[name] = data
        return self._data[name]


@dataclass(frozen=True)
class Voxels:
    """The voxels of one ROI in one hemisphere: ``voxels["psc"]`` are the psc values there."""

    where: np.ndarray
    active_z: float
    maps: _SessionMaps

    def __getitem__(self, name: str) -> np.ndarray:
        return self.maps[name][self.where]

    @property
    def n_voxels(self) -> int:
        return int(self.where.sum())

    @property
    def active(self) -> np.ndarray:
        """Which of the voxels are active (z above the threshold)."""
        return self["z"] > self.active_z


@dataclass(frozen=True)
class Bilateral:
    """Both hemispheres of one ROI, for laterality measures."""

    ipsi: Voxels
    contra: Voxels


@dataclass(frozen=True)
class Measure:
    """One registered measure: its name, its function and where it goes downstream."""

    name: str
    compute: Callable[[Any], float]
    per: str
    model: bool
    report: bool
    description: str


MEASURES: dict[str, Measure] = {}


def roi_measure(name: str, *, per: str = "hemisphere", model: bool = True,
                report: bool = False) -> Callable[[Callable], Callable]:
    """Register the decorated function as the ROI measure ``name``.

    Parameters
    ----------
    name : str
        Lower-case letters, digits and ``_``; becomes the ``measure`` value in the ROI table.
    per : {"hemisphere", "bilateral"}
        One value per ROI x hemisphere (the function gets :class:`Voxels`) or per ROI
        (:class:`Bilateral`).
    model : bool
        A default outcome of the group models.
    report : bool
        Shown in the group report (arm x time table; trajectories of the ipsilesional
        hemisphere for per-hemisphere measures).
    """
    if not _NAME.match(name):
        raise RegistryError(f"ROI measure name {name!r}: use lower-case letters, digits and _")
    if per not in PER:
        raise RegistryError(f"ROI measure {name!r}: per={per!r}, expected one of {PER}")
    if name in MEASURES:
        raise RegistryError(f"ROI measure {name!r} is already registered")

    def register(function: Callable) -> Callable:
        doc = (function.__doc__ or name).strip().splitlines()[0].rstrip(".")
        MEASURES[name] = Measure(name, function, per, model, report, doc)
        return function

    return register


def unregister_measure(name: str) -> None:
    """Forget the measure ``name`` (for plug-ins and tests that registered one)."""
    del MEASURES[name]


def measure_roles() -> dict[str, dict[str, Any]]:
    """Every measure's description and flags, as carried by the ROI table's sidecar."""
    return {m.name: {"Description": m.description, "Per": m.per, "Model": m.model,
                     "Report": m.report} for m in MEASURES.values()}


def roi_table_sidecar() -> dict[str, Any]:
    """The JSON sidecar of an ROI table: its columns, and the registered measures' roles."""
    return {
        "roi": {"Description": "Region of the atlas"},
        "hemi": {"Description": "Hemisphere relative to the lesion",
                 "Levels": {"ipsi": "ipsilesional", "contra": "contralesional",
                            "bilateral": "both (laterality)"}},
        "side": {"Description": "Hemisphere in the image",
                 "Levels": {"L": "left", "R": "right", "LR": "both"}},
        "measure": {"Description": "ROI measure",
                    "Levels": {m.name: m.description for m in MEASURES.values()}},
        "value": {"Description": "Value of the measure"},
        "Measures": measure_roles(),
    }


@roi_measure("n_voxels", model=False)
def n_voxels(voxels: Voxels) -> int:
    """ROI voxels inside the brain mask, lesion removed."""
    return voxels.n_voxels


@roi_measure("effect")
def effect(voxels: Voxels) -> float:
    """Mean effect of the contrast (scanner units)."""
    return voxels["effect"].mean() if voxels.n_voxels else np.nan


@roi_measure("psc", report=True)
def psc(voxels: Voxels) -> float:
    """Mean percent signal change."""
    return voxels["psc"].mean() if voxels.n_voxels else np.nan


@roi_measure("peak_t")
def peak_t(voxels: Voxels) -> float:
    """Peak t statistic."""
    return voxels["t"].max() if voxels.n_voxels else np.nan


@roi_measure("n_active")
def n_active(voxels: Voxels) -> int:
    """Active voxels (z above the active threshold)."""
    return int(voxels.active.sum())


@roi_measure("li", per="bilateral", report=True)
def laterality_index(both: Bilateral) -> float:
    """Laterality index of active voxels, (ipsi - contra) / (ipsi + contra)."""
    ipsi, contra = int(both.ipsi.active.sum()), int(both.contra.active.sum())
    total = ipsi + contra
    return (ipsi - contra) / total if total else np.nan


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
    """Every registered measure of each ROI x hemisphere, from the GLM ``maps`` (name -> path).

    Only the maps the measures ask for are read.

    Returns
    -------
    pandas.DataFrame
        Columns ``roi, hemi, side, measure, value`` with ``hemi`` in ``ipsi`` / ``contra``
        (``bilateral`` for per-ROI measures such as the laterality index ``li``).
    """
    if lesion_side not in OTHER_SIDE:
        raise InputError(None, f"lesion side {lesion_side!r} is not L or R",
                         "write L or R in participants.tsv lesion_side")
    mask_img = nib.load(mask)
    inside = np.asarray(mask_img.dataobj, dtype=np.float64) > 0
    if lesion_mask:
        lesion = _data(lesion_mask) > 0
        if lesion.shape == inside.shape:
            inside &= ~lesion
    session_maps = _SessionMaps(maps, mask, inside.shape)
    # The ROIs on the mask's grid, which is the maps' grid (checked when a map is read).
    masks = roi_masks(load_atlas(atlas), mask_img, threshold)
    per_hemisphere = [m for m in MEASURES.values() if m.per == "hemisphere"]
    bilateral = [m for m in MEASURES.values() if m.per == "bilateral"]
    sides = {"ipsi": lesion_side, "contra": OTHER_SIDE[lesion_side]}
    rows = []
    for roi in sorted({roi for roi, _ in masks}):
        voxels = {hemi: Voxels(masks[(roi, side)] & inside, active_z, session_maps)
                  for hemi, side in sides.items()}
        for hemi, side in sides.items():
            rows += [(roi, hemi, side, m.name, float(m.compute(voxels[hemi])))
                     for m in per_hemisphere]
        both = Bilateral(voxels["ipsi"], voxels["contra"])
        rows += [(roi, "bilateral", "LR", m.name, float(m.compute(both))) for m in bilateral]
    return pd.DataFrame(rows, columns=["roi", "hemi", "side", "measure", "value"])
