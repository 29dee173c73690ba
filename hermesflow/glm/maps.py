"""The registry of statistical maps: every map the session GLM computes, and where it goes.

A map is one function and one line::

    @stat_map("se", derivative=True, roi=False)
    def standard_error(fit: FittedContrast) -> nib.Nifti1Image:
        '''Standard error of the contrast estimate.'''
        return math_img("np.sqrt(v)", v=fit.map("variance"))

The function receives the fitted model and its contrast (:class:`FittedContrast`) and may ask
for other registered maps with ``fit.map(name)`` (computed once, whatever the order).  The
flags say who reads the map: ``derivative`` maps are written to OUTPUT_DIR as
``..._contrast-<c>_stat-<name>_statmap.nii.gz``; ``roi`` maps are given to the ROI measures.
The GLM computes every registered map; nothing downstream lists map names again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from hermesflow.errors import RegistryError

if TYPE_CHECKING:  # nilearn.glm is imported by the GLM node, not by the graph builder
    from hermesflow.glm.ar1 import RunModel

# A map name is a BIDS label (``stat-<name>``): letters and digits only.
_NAME = re.compile(r"^[A-Za-z0-9]+$")


@dataclass
class FittedContrast:
    """What a map is computed from: the fitted model, the contrast, the brain mask.

    A session of several runs is a ``FittedContrast`` whose ``runs`` are the runs' own (and
    whose ``model`` is None): its contrast maps are nilearn's precision-weighted fixed effects
    of the runs' maps (:func:`nilearn.glm.compute_fixed_effects`), so every map built on
    ``contrast_maps`` combines by itself; a map that reads ``model`` combines its runs'
    maps itself (:meth:`per_run`).

    Attributes
    ----------
    model : hermesflow.glm.ar1.RunModel or None
        The fitted first-level model of one run (nilearn's AR(1) model, queried like
        ``FirstLevelModel.compute_contrast``); None for a combination of runs.
    contrast : str
        The contrast of interest (a nilearn expression of the conditions, ``move`` by default).
    mask : nibabel.Nifti1Image
        The brain mask the model was fitted in (for runs: the voxels inside every run's).
    runs : tuple of FittedContrast
        The runs combined (empty for one run).
    dof : float
        Residual degrees of freedom (kept volumes minus design columns; summed over runs).
    """

    model: RunModel | None
    contrast: str
    mask: nib.Nifti1Image
    runs: tuple[FittedContrast, ...] = ()
    dof: float = 100.0
    _computed: dict[str, nib.Nifti1Image] = field(default_factory=dict, repr=False)

    @cached_property
    def contrast_maps(self) -> dict[str, nib.Nifti1Image]:
        """nilearn's maps of the contrast (``effect_size``, ``effect_variance``, ``stat``,
        ``z_score``), computed once for every map that needs them."""
        if not self.runs:
            return self.model.compute_contrast(self.contrast, output_type="all")
        from nilearn.glm import compute_fixed_effects

        effect, variance, stat, z = compute_fixed_effects(
            self.per_run("effect"), self.per_run("variance"), mask=self.mask,
            precision_weighted=True, dofs=[run.dof for run in self.runs])
        return {"effect_size": effect, "effect_variance": variance, "stat": stat,
                "z_score": z}

    def per_run(self, name: str) -> list[nib.Nifti1Image]:
        """The registered map ``name`` of each run (``[self.map(name)]`` for one run)."""
        return [run.map(name) for run in self.runs] if self.runs else [self.map(name)]

    def map(self, name: str) -> nib.Nifti1Image:
        """The registered map ``name``, computed on first use."""
        if name not in self._computed:
            if name not in STAT_MAPS:
                raise RegistryError(f"no statistical map {name!r} is registered "
                               f"(known: {', '.join(STAT_MAPS)})")
            self._computed[name] = STAT_MAPS[name].compute(self)
        return self._computed[name]


@dataclass(frozen=True)
class StatMap:
    """One registered map: its name, how it is computed, who reads it."""

    name: str
    compute: Callable[[FittedContrast], nib.Nifti1Image]
    derivative: bool
    roi: bool


STAT_MAPS: dict[str, StatMap] = {}


def stat_map(name: str, *, derivative: bool = True, roi: bool = False
             ) -> Callable[[Callable[[FittedContrast], nib.Nifti1Image]],
                           Callable[[FittedContrast], nib.Nifti1Image]]:
    """Register the decorated function as the map ``name``.

    Parameters
    ----------
    name : str
        Letters and digits (it becomes the BIDS entity ``stat-<name>``).
    derivative : bool
        Write the map into OUTPUT_DIR.
    roi : bool
        Give the map to the ROI measures.
    """
    if not _NAME.match(name):
        raise RegistryError(f"stat map name {name!r} must be letters and digits (stat-<name>)")
    if name in STAT_MAPS:
        raise RegistryError(f"stat map {name!r} is already registered")

    def register(compute: Callable[[FittedContrast], nib.Nifti1Image]
                 ) -> Callable[[FittedContrast], nib.Nifti1Image]:
        STAT_MAPS[name] = StatMap(name, compute, derivative, roi)
        return compute

    return register


def unregister_stat_map(name: str) -> None:
    """Forget the map ``name`` (for plug-ins and tests that registered one)."""
    del STAT_MAPS[name]


def derivative_maps(paths: dict[str, str]) -> dict[str, str]:
    """The maps among ``paths`` that go to OUTPUT_DIR, in registry order."""
    return {n: paths[n] for n, spec in STAT_MAPS.items() if spec.derivative and n in paths}


def roi_maps(paths: dict[str, str]) -> dict[str, str]:
    """The maps among ``paths`` that the ROI measures read, in registry order."""
    return {n: paths[n] for n, spec in STAT_MAPS.items() if spec.roi and n in paths}


@stat_map("effect", roi=True)
def effect(fit: FittedContrast) -> nib.Nifti1Image:
    """Contrast estimate, in scanner units (the data are not scaled)."""
    return fit.contrast_maps["effect_size"]


@stat_map("variance")
def variance(fit: FittedContrast) -> nib.Nifti1Image:
    """Variance of the contrast estimate."""
    return fit.contrast_maps["effect_variance"]


@stat_map("t", roi=True)
def t_stat(fit: FittedContrast) -> nib.Nifti1Image:
    """t statistic of the contrast."""
    return fit.contrast_maps["stat"]


@stat_map("z", roi=True)
def z_score(fit: FittedContrast) -> nib.Nifti1Image:
    """z score of the contrast."""
    return fit.contrast_maps["z_score"]


@stat_map("baseline", derivative=False)
def baseline(fit: FittedContrast) -> nib.Nifti1Image:
    """Fitted signal at rest: the ``constant`` of the design, unbiased by the task blocks
    (several runs: their mean)."""
    if fit.runs:
        data = np.mean([np.asarray(img.dataobj, np.float64) for img in fit.per_run("baseline")],
                       axis=0)
        return nib.Nifti1Image(data.astype(np.float32), fit.mask.affine)
    return fit.model.compute_contrast("constant", output_type="effect_size")


@stat_map("psc", roi=True)
def psc(fit: FittedContrast) -> nib.Nifti1Image:
    """Percent signal change: 100 x effect / baseline, per unit of the task regressor."""
    return percent_signal_change(fit.map("effect"), fit.map("baseline"), fit.mask)


def percent_signal_change(effect: nib.Nifti1Image, baseline: nib.Nifti1Image,
                          mask: nib.Nifti1Image) -> nib.Nifti1Image:
    """100 x effect / baseline signal, inside the mask (per unit of the task regressor)."""
    effect_data = np.asarray(effect.dataobj, dtype=np.float64)
    base_data = np.asarray(baseline.dataobj, dtype=np.float64)
    inside = (np.asarray(mask.dataobj) > 0) & (base_data > 0)
    values = np.zeros(effect_data.shape, np.float32)
    values[inside] = 100.0 * effect_data[inside] / base_data[inside]
    return nib.Nifti1Image(values, effect.affine)
