"""Nipype doors to the BIDS world: gather one session's inputs, write its derivatives."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from hermesflow.derivatives.naming import SessionNames
from hermesflow.derivatives.sink import sink_maps, sink_session
from hermesflow.derivatives.writing import same_file
from hermesflow.preproc.gather import gather_session


class _GatherSessionInputSpec(BaseInterfaceInputSpec):
    bids_dir = Directory(mandatory=True)
    fmriprep_dir = Directory(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str(mandatory=True)
    space = traits.Str("MNI152NLin2009cAsym", usedefault=True, desc="NAME or NAME:res-N")
    bids_filter_file = traits.Str("", usedefault=True, desc="fMRIPrep's filter file, or ''")
    conditions = traits.List(traits.Str, value=["move"], usedefault=True)
    need_confounds = traits.Bool(True, usedefault=True,
                                 desc="False: a confounds-free model, no table required")


class _GatherSessionOutputSpec(TraitedSpec):
    run_labels = traits.List(traits.Str, desc="run labels (run-1, acq-x_run-2, ...)")
    bold = traits.List(File(exists=True), desc="preprocessed BOLD per run")
    mask = traits.List(File(exists=True), desc="brain mask per run")
    confounds = traits.List(traits.Str, desc="confounds TSV per run ('' when not needed)")
    events = traits.List(File(exists=True), desc="events TSV per run")
    t_r = traits.List(traits.Float, desc="repetition time per run (s)")
    sidecar = traits.List(traits.Str, desc="preprocessed BOLD's JSON per run ('' if absent)")
    lesion_mask = traits.Either(None, File(exists=True), desc="lesion in the BOLD's space")
    raw_lesion = traits.Either(None, File(exists=True), desc="lesion on the T1w, to warp")
    lesion_transforms = traits.List(File(exists=True), desc="fMRIPrep's T1w->space transforms")
    lesion_side = traits.Str()


class GatherSession(SimpleInterface):
    """Find and check the raw and preprocessed files of one subject x session."""

    input_spec = _GatherSessionInputSpec
    output_spec = _GatherSessionOutputSpec

    def _run_interface(self, runtime):
        self._results.update(gather_session(
            self.inputs.bids_dir, self.inputs.fmriprep_dir, self.inputs.subject,
            self.inputs.session, self.inputs.task, self.inputs.space,
            bids_filter_file=self.inputs.bids_filter_file or None,
            conditions=list(self.inputs.conditions), need_confounds=self.inputs.need_confounds,
        ))
        return runtime


class _MapsSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = Directory(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str(mandatory=True)
    space = traits.Str(mandatory=True)
    maps = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                       desc="stat maps to write, by name (stat-<name>)")


class _SessionSinkInputSpec(_MapsSinkInputSpec):
    # The maps sink's doors (where, whose, which maps) plus the per-atlas outputs.
    atlas = traits.Str(mandatory=True)
    roi_table = File(exists=True, mandatory=True)
    roi_sidecar = File(exists=True, desc="JSON sidecar of the ROI table")
    report = traits.Str("", usedefault=True,
                        desc="the session's page for this atlas ('' when it was not drawn)")
    report_error = traits.Str("", usedefault=True,
                              desc="why the page was not drawn: reported after the tables")
    figures = traits.Str("", usedefault=True,
                         desc="the session figures' fragment (its node reruns after a failure)")
    qc = File(exists=True, desc="motion QC JSON; its verdict goes into the ROI table")
    glm_info = traits.Dict(desc="what went into the GLM (n_runs, ...), for the ROI sidecar")


class _SessionSinkOutputSpec(TraitedSpec):
    roi_table = File(exists=True, desc="the ROI table as written in the derivatives")


class SessionSink(SimpleInterface):
    """Write a session's outputs into OUTPUT_DIR (run every time: never cached).

    The maps, ROI table and sidecar first (certified in the manifest), then the report page.
    A page the ROI node could not draw fails this node after the tables are written, so the
    run names the session; the ROI node's cache entry is dropped, so the next run draws it
    again.
    """

    input_spec = _SessionSinkInputSpec
    output_spec = _SessionSinkOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        written = sink_session(
            inputs.output_dir, inputs.subject, inputs.session, inputs.task, inputs.space,
            inputs.atlas, dict(inputs.maps), inputs.roi_table,
            roi_sidecar=inputs.roi_sidecar or None, qc=inputs.qc or None,
            glm_info=dict(inputs.glm_info) if inputs.glm_info else None,
            report=inputs.report or None,
        )
        self._results["roi_table"] = written["roi_table"]
        if inputs.report_error:
            for node_dir in (Path(inputs.roi_table).parent,
                             Path(inputs.figures).parent if inputs.figures else None):
                if node_dir is not None:
                    forget_cached_node(node_dir)
            raise RuntimeError(f"report page not drawn ({inputs.report_error}); the ROI "
                               "table is written")
        return runtime


def forget_cached_node(folder: Path) -> None:
    """Drop the Nipype cache entry of the node that ran in ``folder`` (its ``_0x<hash>.json``
    hash files), so the next run runs it again instead of reusing its result."""
    for hashfile in folder.glob("_0x*.json"):
        hashfile.unlink(missing_ok=True)


class _MapsSinkOutputSpec(TraitedSpec):
    maps = traits.Dict(traits.Str, File(exists=True), desc="the maps as written in OUTPUT_DIR")


class MapsSink(SimpleInterface):
    """Write a session's stat maps into OUTPUT_DIR right after the GLM.

    Cached like any node, but run again whenever a map in OUTPUT_DIR is not the GLM's copy
    (missing, edited, or a new GLM): an atlas re-run, which changes nothing upstream, then
    costs two ``stat`` calls per map here instead of a node run per session.
    """

    input_spec = _MapsSinkInputSpec
    output_spec = _MapsSinkOutputSpec

    @property
    def always_run(self) -> bool:  # Nipype reruns a cached node whose interface says so
        inputs = self.inputs
        if not isdefined(inputs.maps) or not isdefined(inputs.output_dir):
            return True
        names = SessionNames(Path(inputs.output_dir), inputs.subject, inputs.session,
                             inputs.task, inputs.space)
        return not all(same_file(path, names.statmap(stat))
                       for stat, path in inputs.maps.items())

    def _run_interface(self, runtime):
        self._results["maps"] = sink_maps(
            self.inputs.output_dir, self.inputs.subject, self.inputs.session, self.inputs.task,
            self.inputs.space, dict(self.inputs.maps))
        return runtime
