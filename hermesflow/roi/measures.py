"""The registry of ROI measures, and their extraction from one session's GLM maps.

A measure is one function and one line::

    @roi_measure("median_psc", per="hemisphere", model=True, report=False)
    def median_psc(voxels: Voxels) -> float:
        '''Median percent signal change.'''
        return np.median(voxels["psc"]) if voxels.n_voxels else np.nan

``per="hemisphere"`` measures receive the :class:`Voxels` of one ROI in one hemisphere (the
ROI inside the brain mask, lesion removed): ``voxels[<map>]`` are the values of a GLM map
there, ``n_voxels`` their count, ``active`` the voxels whose z exceeds the active threshold,
``before_lesion`` the ROI in the brain mask with the lesion still in, ``weight`` the atlas
probability (0-1) of every voxel.  A ROI the lesion covers entirely is flagged by ``destroyed``
(its means are then n/a, not noise).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hermesflow.derivatives.writing import read_map
from hermesflow.errors import InputError, RegistryError
from hermesflow.glm.sanity import check_same_grid
from hermesflow.roi.atlases import Atlas, atlas_provenance, load_atlas, roi_maps

OTHER_SIDE = {"L": "R", "R": "L"}
PER = ("hemisphere", "bilateral")
# Measure names become outcome names (``mi4p_ipsi_<name>``) and TSV values.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _data(path: str | Path) -> np.ndarray:
    return np.asarray(read_map(path).dataobj, dtype=np.float64)


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
    # The ROI in the brain mask before the lesion is removed, and the atlas probability
    # (0-1; 1 in label atlases) of every voxel of the grid.
    before_lesion: np.ndarray | None = None
    weight: np.ndarray | None = None
    # Each map's values at ``where``, taken once (the measures ask for the same few maps).
    _values: dict = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._values:
            values = self.maps[name][self.where]
            values.setflags(write=False)
            self._values[name] = values
        return self._values[name]

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


def roi_table_sidecar(atlas: Atlas | None = None, threshold: float = 25.0) -> dict[str, Any]:
    """The JSON sidecar of an ROI table: its columns, the registered measures' roles, and
    (given the prepared ``atlas``) where its regions and their hemispheres came from."""
    sidecar = {
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
    if atlas is not None:
        sidecar["Atlas"] = atlas_provenance(atlas, threshold)
    return sidecar


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


@roi_measure("n_voxels_atlas", model=False)
def n_voxels_atlas(voxels: Voxels) -> int:
    """ROI voxels inside the brain mask, lesion included."""
    before = voxels.before_lesion
    return voxels.n_voxels if before is None else int(before.sum())


@roi_measure("frac_lesioned", model=False)
def frac_lesioned(voxels: Voxels) -> float:
    """Fraction of the ROI's voxels (in the brain mask) that are in the lesion."""
    before = n_voxels_atlas(voxels)
    return 1.0 - voxels.n_voxels / before if before else np.nan


@roi_measure("destroyed", model=False)
def destroyed(voxels: Voxels) -> int:
    """1 if the lesion covers the whole ROI (its other measures are then n/a), else 0."""
    return int(voxels.n_voxels == 0 and n_voxels_atlas(voxels) > 0)


@roi_measure("mean_t", model=False)
def mean_t(voxels: Voxels) -> float:
    """Mean t statistic."""
    return voxels["t"].mean() if voxels.n_voxels else np.nan


@roi_measure("frac_active", model=False)
def frac_active(voxels: Voxels) -> float:
    """Fraction of the ROI's voxels that are active."""
    return voxels.active.mean() if voxels.n_voxels else np.nan


@roi_measure("psc_weighted", model=False)
def psc_weighted(voxels: Voxels) -> float:
    """Mean percent signal change weighted by the atlas probability (label atlases: weight 1)."""
    if not voxels.n_voxels:
        return np.nan
    weight = np.ones(voxels.n_voxels) if voxels.weight is None else voxels.weight[voxels.where]
    return float((weight * voxels["psc"]).sum() / weight.sum()) if weight.sum() else np.nan


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
    atlas: str | Atlas = "juelich",
    rois: list[str] | None = None,
    space: str | None = None,
    threshold: float = 25.0,
    active_z: float = 3.1,
) -> pd.DataFrame:
    """Every registered measure of each ROI x hemisphere, from the GLM ``maps`` (name -> path).

    Only the maps the measures ask for are read.

    Parameters
    ----------
    atlas
        A prepared atlas, or what ``--atlas`` names (loaded with ``rois`` and ``space``:
        :func:`hermesflow.roi.atlases.load_atlas`).

    Returns
    -------
    pandas.DataFrame
        Columns ``roi, hemi, side, measure, value`` with ``hemi`` in ``ipsi`` / ``contra``
        (``bilateral`` for per-ROI measures such as the laterality index ``li``).
    """
    if lesion_side not in OTHER_SIDE:
        raise InputError(None, f"lesion side {lesion_side!r} is not L or R",
                         "write L or R in participants.tsv lesion_side")
    if not isinstance(atlas, Atlas):
        atlas = load_atlas(atlas, rois, space)
    mask_img = read_map(mask)
    brain = np.asarray(mask_img.dataobj, dtype=np.float64) > 0
    inside = brain.copy()
    if lesion_mask:
        # A lesion on another grid is refused, never dropped or resampled silently.
        check_same_grid({str(mask): mask_img, str(lesion_mask): read_map(lesion_mask)})
        inside &= ~(_data(lesion_mask) > 0)
    session_maps = _SessionMaps(maps, mask, inside.shape)
    # The ROIs on the mask's grid, which is the maps' grid (checked when a map is read).
    found = roi_maps(atlas, mask_img, threshold)
    per_hemisphere = [m for m in MEASURES.values() if m.per == "hemisphere"]
    bilateral = [m for m in MEASURES.values() if m.per == "bilateral"]
    sides = {"ipsi": lesion_side, "contra": OTHER_SIDE[lesion_side]}
    rows = []
    for roi in sorted({roi for roi, _ in found}):
        voxels = {}
        for hemi, side in sides.items():
            region = found.get((roi, side))
            where = np.zeros_like(brain) if region is None else region.mask
            weight = None if region is None else region.weight
            voxels[hemi] = Voxels(where & inside, active_z, session_maps,
                                  before_lesion=where & brain, weight=weight)
        for hemi, side in sides.items():
            rows += [(roi, hemi, side, m.name, float(m.compute(voxels[hemi])))
                     for m in per_hemisphere]
        both = Bilateral(voxels["ipsi"], voxels["contra"])
        rows += [(roi, "bilateral", "LR", m.name, float(m.compute(both))) for m in bilateral]
    return pd.DataFrame(rows, columns=["roi", "hemi", "side", "measure", "value"])
