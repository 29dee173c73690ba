"""Nipype door to fMRIPrep in a container (:mod:`hermesflow.preproc.fmriprep`)."""

from __future__ import annotations

import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from hermesflow.containers import (
    FMRIPrepOptions,
    check_label,
)
from hermesflow.preproc.fmriprep import run_fmriprep_participant


class _FMRIPrepInputSpec(BaseInterfaceInputSpec):
    bids_dir = Directory(exists=True, mandatory=True, desc="BIDS dataset (mounted read-only)")
    output_dir = traits.Str(mandatory=True, desc="fMRIPrep output folder (shared)")
    work_dir = traits.Str(mandatory=True, desc="root of the fMRIPrep work folders")
    participant_label = traits.Str(mandatory=True, desc="one participant, without sub-")
    sessions = traits.List(traits.Str, desc="sessions to check (default: all with the task)")
    engine = traits.Enum("docker", "podman", "apptainer", "singularity", "none",
                         usedefault=True)
    engine_executable = traits.Str("", usedefault=True)
    image = traits.Str("", usedefault=True, desc="fMRIPrep image (default: pinned release)")
    fs_license_file = traits.Str("", usedefault=True)
    templateflow_home = traits.Str("", usedefault=True)
    output_spaces = traits.List(traits.Str, ["MNI152NLin2009cAsym:res-2"], usedefault=True)
    fs_reconall = traits.Bool(False, usedefault=True)
    nthreads = traits.Int(0, usedefault=True)
    omp_nthreads = traits.Int(0, usedefault=True)
    mem_mb = traits.Int(0, usedefault=True)
    bids_validated = traits.Bool(False, usedefault=True,
                                 desc="hermesflow validated the dataset: skip fMRIPrep's check")
    task = traits.Str("passivewrist", usedefault=True)
    space = traits.Str("MNI152NLin2009cAsym", usedefault=True)
    extra_args = traits.List(traits.Str, desc="further fMRIPrep arguments, one per word")


class _FMRIPrepOutputSpec(TraitedSpec):
    fmriprep_dir = Directory(exists=True, desc="fMRIPrep derivatives (all participants)")
    participant_label = traits.Str()
    sessions = traits.List(traits.Str)
    ran = traits.Bool(desc="False when existing derivatives matched and fMRIPrep was skipped")
    log_file = File(desc="fMRIPrep's log (empty when not run)")
    provenance = traits.Dict(desc="BIDS GeneratedBy entry, image digest included")


class FMRIPrep(SimpleInterface):
    """Run fMRIPrep (containerised) for one participant and check its outputs."""

    input_spec = _FMRIPrepInputSpec
    output_spec = _FMRIPrepOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        participant = check_label(inputs.participant_label)
        options = FMRIPrepOptions(
            output_spaces=tuple(inputs.output_spaces),
            fs_reconall=inputs.fs_reconall,
            nthreads=inputs.nthreads or None,
            omp_nthreads=inputs.omp_nthreads or None,
            mem_mb=inputs.mem_mb or None,
            skip_bids_validation=inputs.bids_validated,
            task=inputs.task,
            extra_args=tuple(inputs.extra_args) if isdefined(inputs.extra_args) else (),
        )
        result = run_fmriprep_participant(
            bids_dir=inputs.bids_dir,
            output_dir=inputs.output_dir,
            work_dir=os.path.join(inputs.work_dir, f"sub-{participant}"),
            participant_label=participant,
            engine=inputs.engine,
            executable=inputs.engine_executable,
            image=inputs.image,
            fs_license_file=inputs.fs_license_file or None,
            templateflow_home=inputs.templateflow_home or None,
            options=options,
            space=inputs.space,
            sessions=list(inputs.sessions) if isdefined(inputs.sessions) else None,
            log_dir=runtime.cwd,
        )
        self._results.update(
            fmriprep_dir=result.fmriprep_dir,
            participant_label=result.participant,
            sessions=result.sessions,
            ran=result.ran,
            provenance=result.provenance,
        )
        if result.log_file:
            self._results["log_file"] = result.log_file
        return runtime
