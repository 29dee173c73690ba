"""Nipype doors to the session HTML report (drawn in :mod:`hermesflow.derivatives.session_report`).

``SessionFiguresHTML`` draws the atlas-independent figures (QC, design, registration) once per
session, upstream of the atlas iterable, so Nipype caches them; ``SessionReport`` draws one
atlas's z map and ROI table and assembles the page in its own folder; ``SessionReportSink``
copies it into OUTPUT_DIR.  The session's maps and ROI table are written by their own sink, which never waits
for the report: a page that fails to draw leaves the numbers written.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.derivatives.naming import SessionNames
from hermesflow.derivatives.session_report import (
    SessionFigures,
    session_figures_html,
    session_report,
)
from hermesflow.derivatives.writing import copy_file
from hermesflow.errors import InputError
from hermesflow.roi.atlases import load_atlas, roi_masks
from hermesflow.templates import template_path


class _SessionReportInputSpec(BaseInterfaceInputSpec):
    maps = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                       desc="GLM maps by name; the page shows 'z'")
    mask = File(exists=True, mandatory=True)
    roi_table = File(exists=True, mandatory=True)
    lesion_side = traits.Str(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    atlas = traits.Str("juelich", usedefault=True)
    atlas_digest = traits.Str("", usedefault=True, desc="hash of the atlas's files (cache key)")
    rois = traits.List(traits.Str, desc="region names or patterns (empty: the atlas's default)")
    space = traits.Str("", usedefault=True)
    threshold = traits.Float(25.0, usedefault=True)
    figures = File(exists=True, desc="the session's atlas-independent figures (HTML fragment)")
    lesion_mask = traits.Either(None, File(exists=True), default=None, usedefault=True)


class _SessionReportOutputSpec(TraitedSpec):
    report = File(exists=True)


class _SessionFiguresInputSpec(BaseInterfaceInputSpec):
    qc = File(exists=True, desc="motion QC JSON (the verdict line and FD threshold)")
    confounds = File(exists=True, desc="fMRIPrep confounds TSV (FD trace)")
    design = File(exists=True, desc="the GLM's design matrix TSV")
    contrast = traits.Str(desc="the contrast's formula over the design's columns")
    bold = File(exists=True, desc="preprocessed BOLD (mean image for the registration check)")
    lesion_mask = traits.Either(None, File(exists=True), default=None, usedefault=True)
    glm_info = traits.Dict(desc="what went into the GLM (n_runs, per run volumes, dummies)")


class _SessionFiguresOutputSpec(TraitedSpec):
    figures = File(exists=True, desc="HTML fragment: QC, runs, FD, contrast, design, registration")


def _template() -> str | None:
    """The template whose edges are drawn; the page goes without them if it is missing."""
    try:
        return str(template_path())
    except InputError:
        return None


class SessionReport(SimpleInterface):
    """Draw one atlas's z map and ROI table; the page, with the session's figures above."""

    input_spec = _SessionReportInputSpec
    output_spec = _SessionReportOutputSpec

    def _run_interface(self, runtime):
        z_map = self.inputs.maps["z"]
        inside = nib.load(self.inputs.mask).get_fdata() > 0
        atlas = load_atlas(self.inputs.atlas, list(self.inputs.rois or []),
                           self.inputs.space or None)
        masks = roi_masks(atlas, nib.load(z_map), self.inputs.threshold)
        masks = {key: mask & inside for key, mask in masks.items()}
        lesion_mask = self.inputs.lesion_mask or None
        if lesion_mask:
            lesion = np.asarray(nib.load(lesion_mask).dataobj) > 0
            if lesion.shape == inside.shape:
                # Outline what the ROI measures read: the lesion's voxels are left out.
                masks = {key: mask & ~lesion for key, mask in masks.items()}
        header = Path(self.inputs.figures).read_text() if self.inputs.figures else None
        self._results["report"] = str(session_report(
            Path(runtime.cwd) / "report.html",
            title=f"sub-{self.inputs.subject} ses-{self.inputs.session}: passive wrist movement",
            z_map=z_map, roi_masks=masks,
            roi_table=pd.read_csv(self.inputs.roi_table, sep="\t"),
            lesion_side=self.inputs.lesion_side, header=header,
        ))
        return runtime


class SessionFiguresHTML(SimpleInterface):
    """Draw a session's atlas-independent figures once (an HTML fragment in its folder)."""

    input_spec = _SessionFiguresInputSpec
    output_spec = _SessionFiguresOutputSpec

    def _run_interface(self, runtime):
        figures = SessionFigures(
            qc=json.loads(Path(self.inputs.qc).read_text()) if self.inputs.qc else None,
            confounds=self.inputs.confounds or None, design=self.inputs.design or None,
            contrast=self.inputs.contrast or None, bold=self.inputs.bold or None,
            lesion_mask=self.inputs.lesion_mask or None,
            template=_template() if self.inputs.bold else None,
            glm=dict(self.inputs.glm_info) or None,
        )
        path = Path(runtime.cwd) / "figures.html"
        path.write_text(session_figures_html(figures))
        self._results["figures"] = str(path)
        return runtime


class _SessionReportSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = Directory(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str(mandatory=True)
    space = traits.Str(mandatory=True)
    atlas = traits.Str(mandatory=True, desc="atlas label of the file name")
    report = File(exists=True, mandatory=True)


class _SessionReportSinkOutputSpec(TraitedSpec):
    report = File(exists=True, desc="the page as written in OUTPUT_DIR")


class SessionReportSink(SimpleInterface):
    """Copy a session's report page into OUTPUT_DIR with its BIDS name (run every time)."""

    input_spec = _SessionReportSinkInputSpec
    output_spec = _SessionReportSinkOutputSpec

    def _run_interface(self, runtime):
        names = SessionNames(Path(self.inputs.output_dir), self.inputs.subject,
                             self.inputs.session, self.inputs.task, self.inputs.space)
        self._results["report"] = str(copy_file(self.inputs.report,
                                                names.report(self.inputs.atlas)))
        return runtime
