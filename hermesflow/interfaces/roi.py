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

from hermesflow.derivatives.writing import write_json, write_tsv
from hermesflow.roi.atlases import load_atlas
from hermesflow.roi.measures import extract_roi_measures, roi_table_sidecar


class _ROIMeasuresInputSpec(BaseInterfaceInputSpec):
    maps = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                       desc="GLM maps the measures read, by name")
    mask = File(exists=True, mandatory=True)
    lesion_mask = traits.Either(None, File(exists=True), default=None, usedefault=True)
    lesion_side = traits.Str(mandatory=True, desc="L or R")
    atlas = traits.Str("juelich", usedefault=True, desc="--atlas: a source's name or a path")
    atlas_digest = traits.Str("", usedefault=True,
                              desc="hash of the atlas's files: the cache keys on the content")
    rois = traits.List(traits.Str, desc="region names or patterns (empty: the atlas's default)")
    space = traits.Str("", usedefault=True, desc="space of the maps (the atlas must be in it)")
    threshold = traits.Float(25.0, usedefault=True)
    active_z = traits.Float(3.1, usedefault=True)


class _ROIMeasuresOutputSpec(TraitedSpec):
    table = File(exists=True, desc="long table: roi, hemi, side, measure, value")
    sidecar = File(exists=True, desc="JSON sidecar: columns, each measure's roles, the atlas")


class ROIMeasures(SimpleInterface):
    """Extract the ROI measures of one session (see :func:`extract_roi_measures`)."""

    input_spec = _ROIMeasuresInputSpec
    output_spec = _ROIMeasuresOutputSpec

    def _run_interface(self, runtime):
        atlas = load_atlas(self.inputs.atlas, list(self.inputs.rois or []),
                           self.inputs.space or None)
        table = extract_roi_measures(
            dict(self.inputs.maps), self.inputs.mask, self.inputs.lesion_side,
            lesion_mask=self.inputs.lesion_mask, atlas=atlas,
            threshold=self.inputs.threshold, active_z=self.inputs.active_z,
        )
        sidecar = roi_table_sidecar(atlas, self.inputs.threshold)
        sidecar["Atlas"]["Digest"] = self.inputs.atlas_digest or None
        self._results["table"] = str(write_tsv(Path(runtime.cwd) / "roi.tsv", table))
        self._results["sidecar"] = str(write_json(Path(runtime.cwd) / "roi.json", sidecar))
        return runtime
