"""Nipype door to the ROI measures (:mod:`hermesflow.roi.measures`)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.derivatives.writing import write_tsv
from hermesflow.roi.measures import extract_roi_measures


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
