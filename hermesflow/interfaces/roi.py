"""Nipype door to the ROI measures (:mod:`hermesflow.roi.measures`) and the atlas's page.

One node per session and atlas: the measures, then the session's report page for that atlas
(:func:`~hermesflow.interfaces.report.draw_atlas_page`), from the same prepared atlas.  Each
Nipype node costs its dispatch, hashing and result files; a second node per atlas for the page
cost as much as the measures themselves.  The page never holds back the table: a page that
cannot be drawn leaves ``report`` empty and says why in ``report_error``, and the session sink
writes the table, then reports that failure.
"""

from __future__ import annotations

import logging
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

LOGGER = logging.getLogger("hermesflow")


class _ROIMeasuresInputSpec(BaseInterfaceInputSpec):
    maps = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                       desc="GLM maps the measures read, by name (the page shows 'z')")
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
    subject = traits.Str("", usedefault=True, desc="subject label; empty: no page is drawn")
    session = traits.Str("", usedefault=True, desc="session label (the page's title)")
    figures = File(exists=True, desc="the session's atlas-independent figures (HTML fragment)")
    figures_error = traits.Str("", usedefault=True,
                               desc="why those figures were not drawn (reported with the page)")


class _ROIMeasuresOutputSpec(TraitedSpec):
    table = File(exists=True, desc="long table: roi, hemi, side, measure, value")
    sidecar = File(exists=True, desc="JSON sidecar: columns, each measure's roles, the atlas")
    report = traits.Str(desc="the session's page for this atlas ('' when not drawn)")
    report_error = traits.Str(desc="why the page could not be drawn ('' when it was)")


class ROIMeasures(SimpleInterface):
    """Extract the ROI measures of one session (see :func:`extract_roi_measures`), then draw
    its page for this atlas when ``subject`` is given."""

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
        cwd = Path(runtime.cwd)
        # The node's own folder is a cache: written atomically, not flushed (the sink is).
        self._results["table"] = str(write_tsv(cwd / "roi.tsv", table, sync=False))
        self._results["sidecar"] = str(write_json(cwd / "roi.json", sidecar, sync=False))
        self._results["report"], self._results["report_error"] = "", ""
        if self.inputs.subject:
            self._draw_page(atlas, cwd / "report.html")
            if self.inputs.figures_error and not self._results["report_error"]:
                self._results["report_error"] = f"session figures: {self.inputs.figures_error}"
        return runtime

    def _draw_page(self, atlas, path: Path) -> None:
        # Imported here: the measures alone (tests, the bench's script) need no plotting code.
        from hermesflow.interfaces.report import draw_atlas_page

        inputs = self.inputs
        try:
            self._results["report"] = str(draw_atlas_page(
                path, subject=inputs.subject, session=inputs.session, maps=dict(inputs.maps),
                mask=inputs.mask, atlas=atlas, threshold=inputs.threshold,
                roi_table=self._results["table"], lesion_side=inputs.lesion_side,
                lesion_mask=inputs.lesion_mask or None, figures=inputs.figures or None))
        except Exception as err:  # noqa: BLE001 - the table must not wait for a drawing
            LOGGER.warning("sub-%s ses-%s: report page not drawn: %s", inputs.subject,
                           inputs.session, err)
            self._results["report_error"] = f"{type(err).__name__}: {err}"
