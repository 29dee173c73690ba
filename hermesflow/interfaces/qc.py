"""Nipype door to a session's motion QC (:func:`hermesflow.preproc.qc.motion_qc`)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.derivatives.writing import write_json
from hermesflow.preproc.qc import motion_qc


class _MotionQCInputSpec(BaseInterfaceInputSpec):
    confounds = File(exists=True, mandatory=True, desc="fMRIPrep confounds TSV")
    fd_threshold = traits.Float(0.5, usedefault=True, desc="FD (mm) of a moved volume")
    max_mean_fd = traits.Float(0.5, usedefault=True, desc="largest acceptable mean FD (mm)")
    max_fraction_above = traits.Float(0.2, usedefault=True,
                                      desc="largest acceptable fraction of moved volumes")


class _MotionQCOutputSpec(TraitedSpec):
    qc = File(exists=True, desc="JSON: the numbers, the limits, status and reason")


class MotionQC(SimpleInterface):
    """Judge one session's head motion against the configured limits."""

    input_spec = _MotionQCInputSpec
    output_spec = _MotionQCOutputSpec

    def _run_interface(self, runtime):
        verdict = motion_qc(self.inputs.confounds, fd_threshold=self.inputs.fd_threshold,
                            max_mean_fd=self.inputs.max_mean_fd,
                            max_fraction_above=self.inputs.max_fraction_above)
        self._results["qc"] = str(write_json(Path(runtime.cwd) / "qc.json", verdict.to_dict()))
        return runtime
