"""Nipype doors to the HTML reports (the pages themselves are drawn in derivatives.reports)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.derivatives.reports import session_report
from hermesflow.roi.atlases import load_atlas, roi_masks


class _SessionReportInputSpec(BaseInterfaceInputSpec):
    maps = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                       desc="GLM maps by name; the page shows 'z'")
    mask = File(exists=True, mandatory=True)
    roi_table = File(exists=True, mandatory=True)
    lesion_side = traits.Str(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    atlas = traits.Str("juelich", usedefault=True)
    threshold = traits.Float(25.0, usedefault=True)


class _SessionReportOutputSpec(TraitedSpec):
    report = File(exists=True)


class SessionReport(SimpleInterface):
    """Draw one session's report page (z map, ROI outlines, ROI measures)."""

    input_spec = _SessionReportInputSpec
    output_spec = _SessionReportOutputSpec

    def _run_interface(self, runtime):
        z_map = self.inputs.maps["z"]
        inside = nib.load(self.inputs.mask).get_fdata() > 0
        masks = roi_masks(load_atlas(self.inputs.atlas), nib.load(z_map), self.inputs.threshold)
        masks = {key: mask & inside for key, mask in masks.items()}
        self._results["report"] = str(session_report(
            Path(runtime.cwd) / "report.html",
            title=f"sub-{self.inputs.subject} ses-{self.inputs.session}: passive wrist movement",
            z_map=z_map, roi_masks=masks,
            roi_table=pd.read_csv(self.inputs.roi_table, sep="\t"),
            lesion_side=self.inputs.lesion_side,
        ))
        return runtime
