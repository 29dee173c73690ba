"""Nipype doors to the session HTML report (drawn in :mod:`hermesflow.derivatives.session_report`).

``SessionFiguresHTML`` draws the atlas-independent figures (QC, design, registration) once per
session, upstream of the atlas iterable, so Nipype caches them; :func:`draw_atlas_page` draws
one atlas's z map and ROI table and assembles the page.  It runs inside the ROI node
(:class:`~hermesflow.interfaces.roi.ROIMeasures`), one node per session and atlas; a page that
fails there leaves the ROI table written (the session sink reports the failure).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.derivatives.html import escape
from hermesflow.derivatives.session_report import (
    SessionFigures,
    session_figures_html,
    session_report,
)
from hermesflow.derivatives.writing import read_map
from hermesflow.errors import InputError
from hermesflow.roi.atlases import Atlas, roi_masks
from hermesflow.templates import template_path


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
    error = traits.Str(desc="why the fragment could not be drawn ('' when it was)")


def _template() -> str | None:
    """The template whose edges are drawn; the page goes without them if it is missing."""
    try:
        return str(template_path())
    except InputError:
        return None


def draw_atlas_page(path: str | Path, *, subject: str, session: str, maps: dict[str, str],
                    mask: str, atlas: Atlas, threshold: float, roi_table: str,
                    lesion_side: str, lesion_mask: str | None = None,
                    figures: str | None = None) -> Path:
    """One atlas's page of a session: the cached session figures, the z map with the ROI
    outlines the measures read (inside the brain, lesion voxels left out), the ROI table.

    Parameters
    ----------
    maps
        The GLM's maps by name; the page shows ``z``.
    atlas
        The prepared atlas (:func:`~hermesflow.roi.atlases.load_atlas`) the ROI table used.
    figures
        The session's atlas-independent figures (:class:`SessionFiguresHTML`), if drawn.
    """
    z_map = maps["z"]
    inside = np.asarray(read_map(mask).dataobj) > 0
    masks = {key: roi & inside for key, roi in
             roi_masks(atlas, read_map(z_map), threshold).items()}
    if lesion_mask:
        lesion = np.asarray(read_map(lesion_mask).dataobj) > 0
        if lesion.shape == inside.shape:
            # Outline what the ROI measures read: the lesion's voxels are left out.
            masks = {key: roi & ~lesion for key, roi in masks.items()}
    header = Path(figures).read_text() if figures else None
    return session_report(
        path, title=f"sub-{subject} ses-{session}: passive wrist movement", z_map=z_map,
        roi_masks=masks, roi_table=pd.read_csv(roi_table, sep="\t"), lesion_side=lesion_side,
        header=header, template=_template())


class SessionFiguresHTML(SimpleInterface):
    """Draw a session's atlas-independent figures once (an HTML fragment in its folder)."""

    input_spec = _SessionFiguresInputSpec
    output_spec = _SessionFiguresOutputSpec

    def _run_interface(self, runtime):
        path = Path(runtime.cwd) / "figures.html"
        self._results["figures"], self._results["error"] = str(path), ""
        try:
            figures = SessionFigures(
                qc=json.loads(Path(self.inputs.qc).read_text()) if self.inputs.qc else None,
                confounds=self.inputs.confounds or None, design=self.inputs.design or None,
                contrast=self.inputs.contrast or None, bold=self.inputs.bold or None,
                lesion_mask=self.inputs.lesion_mask or None,
                template=_template() if self.inputs.bold else None,
                glm=dict(self.inputs.glm_info) or None,
            )
            path.write_text(session_figures_html(figures))
        except Exception as err:  # noqa: BLE001 - the ROI node (and its table) waits on this
            self._results["error"] = f"{type(err).__name__}: {err}"
            path.write_text(f'<p class="note">session figures not drawn: {escape(err)}</p>')
        return runtime
