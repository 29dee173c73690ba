"""Nipype doors to the BIDS world: gather one session's inputs, write its derivatives."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.derivatives.sink import sink_session
from hermesflow.preproc.gather import gather_session


class _GatherSessionInputSpec(BaseInterfaceInputSpec):
    bids_dir = Directory(mandatory=True)
    fmriprep_dir = Directory(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str(mandatory=True)
    space = traits.Str("MNI152NLin2009cAsym", usedefault=True)


class _GatherSessionOutputSpec(TraitedSpec):
    bold = File(exists=True)
    mask = File(exists=True)
    confounds = File(exists=True)
    lesion_mask = traits.Either(None, File(exists=True))
    events = File(exists=True)
    t_r = traits.Float()
    lesion_side = traits.Str()


class GatherSession(SimpleInterface):
    """Find and check the raw and preprocessed files of one subject x session."""

    input_spec = _GatherSessionInputSpec
    output_spec = _GatherSessionOutputSpec

    def _run_interface(self, runtime):
        self._results.update(gather_session(
            self.inputs.bids_dir, self.inputs.fmriprep_dir, self.inputs.subject,
            self.inputs.session, self.inputs.task, self.inputs.space,
        ))
        return runtime



class _SessionSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = Directory(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str(mandatory=True)
    space = traits.Str(mandatory=True)
    atlas = traits.Str(mandatory=True)
    maps = traits.Dict(traits.Str, File(exists=True), mandatory=True,
                       desc="stat maps to write, by name (stat-<name>)")
    roi_table = File(exists=True, mandatory=True)
    roi_sidecar = File(exists=True, desc="JSON sidecar of the ROI table")
    report = File(exists=True, desc="HTML report of the session")


class _SessionSinkOutputSpec(TraitedSpec):
    roi_table = File(exists=True, desc="the ROI table as written in the derivatives")


class SessionSink(SimpleInterface):
    """Write a session's outputs into OUTPUT_DIR (run every time: never cached)."""

    input_spec = _SessionSinkInputSpec
    output_spec = _SessionSinkOutputSpec

    def _run_interface(self, runtime):
        written = sink_session(
            self.inputs.output_dir, self.inputs.subject, self.inputs.session,
            self.inputs.task, self.inputs.space, self.inputs.atlas, dict(self.inputs.maps),
            self.inputs.roi_table, report=self.inputs.report or None,
            roi_sidecar=self.inputs.roi_sidecar or None,
        )
        self._results["roi_table"] = written["roi_table"]
        return runtime
