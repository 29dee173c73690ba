"""Nipype doors to the native preprocessing steps (:mod:`hermesflow.preproc.native`).

One interface per step.  Each writes its files into the node's own working folder
(``runtime.cwd``), so Nipype's cache holds them and a rerun reuses every step whose inputs did
not change.  Every step takes ``fail_on_purpose`` (set by the workflow for the nodes listed in
``[nipype] fail_nodes``): the node then raises, which lets tests crash a run half-way.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from hermesflow.errors import HermesflowError
from hermesflow.preproc.native import (
    check_inputs,
    coregister_bold,
    estimate_head_motion,
    extract_brain,
    find_inputs,
    normalise_session,
    resample_session,
    write_confounds,
    write_outputs,
)


class FailedOnPurpose(HermesflowError):
    """A node listed in ``[nipype] fail_nodes`` ran."""


def fail_if_asked(node_name) -> None:
    """Raise :class:`FailedOnPurpose` when ``node_name`` is set (the node is in fail_nodes)."""
    if isdefined(node_name) and node_name:
        raise FailedOnPurpose(f"node {node_name!r} failed on purpose ([nipype] fail_nodes) -- "
                              "remove it from fail_nodes to let it run")


class _StepInputSpec(BaseInterfaceInputSpec):
    # Undefined unless asked for, so it leaves the hash of a normal run unchanged.
    fail_on_purpose = traits.Str(desc="this node's name: raise instead of running (tests)")


class _NativeStep(SimpleInterface):
    """A native step: honour ``fail_on_purpose``, then run :meth:`_step` in the node's cwd."""

    def _run_interface(self, runtime):
        fail_if_asked(self.inputs.fail_on_purpose)
        self._results.update(self._step(Path(runtime.cwd)))
        return runtime

    def _step(self, cwd: Path) -> dict:
        raise NotImplementedError


class _FindInputsInputSpec(_StepInputSpec):
    bids_dir = traits.Str(mandatory=True, desc="raw BIDS dataset")
    subject = traits.Str(mandatory=True, desc="label, with or without prefix")
    session = traits.Str(mandatory=True, desc="label, with or without prefix")
    task = traits.Str("passivewrist", usedefault=True)


class _FindInputsOutputSpec(TraitedSpec):
    t1w = File(exists=True)
    lesion = File(exists=True)
    bold = File(exists=True)
    subject = traits.Str(desc="label without prefix")
    session = traits.Str(desc="label without prefix")
    sidecar = traits.Dict(desc="the BOLD run's JSON metadata (BIDS inheritance applied)")


class FindNativeInputs(_NativeStep):
    """The session's raw T1w, lesion mask and BOLD run, checked (:func:`find_inputs`,
    :func:`check_inputs`)."""

    input_spec = _FindInputsInputSpec
    output_spec = _FindInputsOutputSpec

    def _step(self, cwd: Path) -> dict:
        subject = self.inputs.subject.removeprefix("sub-")
        session = self.inputs.session.removeprefix("ses-")
        found = find_inputs(self.inputs.bids_dir, subject, session, self.inputs.task)
        sidecar = check_inputs(found, self.inputs.bids_dir, self.inputs.task)
        return {"t1w": str(found.t1w), "lesion": str(found.lesion), "bold": str(found.bold),
                "subject": subject, "session": session, "sidecar": sidecar}


class _BrainInputSpec(_StepInputSpec):
    t1w = File(exists=True, mandatory=True, desc="raw T1w (skull on or stripped)")
    lesion = File(exists=True, mandatory=True, desc="lesion mask, left out of the cost")


class _BrainOutputSpec(TraitedSpec):
    brain = File(exists=True, desc="brain-extracted T1w")
    mask = File(exists=True, desc="brain mask on the T1w grid")
    transforms = traits.List(File(exists=True), desc="T1w -> template affine (may be empty)")


class BrainExtract(_NativeStep):
    """Template-based brain extraction of the T1w (:func:`extract_brain`)."""

    input_spec = _BrainInputSpec
    output_spec = _BrainOutputSpec

    def _step(self, cwd: Path) -> dict:
        result = extract_brain(self.inputs.t1w, self.inputs.lesion, cwd)
        return {"brain": str(result.brain), "mask": str(result.mask),
                "transforms": [str(f) for f in result.transforms]}


class _HeadMotionInputSpec(_StepInputSpec):
    bold = File(exists=True, mandatory=True, desc="raw BOLD run (4D)")


class _HeadMotionOutputSpec(TraitedSpec):
    boldref = File(exists=True, desc="temporal mean every volume is aligned to")
    transforms = traits.List(File(exists=True), desc="one rigid transform per volume")
    motion_params = File(exists=True, desc="trans_*/rot_* per volume (TSV)")


class HeadMotion(_NativeStep):
    """Per-volume rigid registration to the run mean (:func:`estimate_head_motion`)."""

    input_spec = _HeadMotionInputSpec
    output_spec = _HeadMotionOutputSpec

    def _step(self, cwd: Path) -> dict:
        motion = estimate_head_motion(self.inputs.bold, cwd)
        return {"boldref": str(motion.boldref), "transforms": [str(t) for t in motion.transforms],
                "motion_params": str(motion.parameters)}


class _BoldToT1wInputSpec(_StepInputSpec):
    boldref = File(exists=True, mandatory=True)
    t1w = File(exists=True, mandatory=True)


class _TransformsOutputSpec(TraitedSpec):
    transforms = traits.List(File(exists=True), desc="ANTs transform files, fixed space first")


class BoldToT1w(_NativeStep):
    """BOLD reference -> T1w, rigid (:func:`coregister_bold`)."""

    input_spec = _BoldToT1wInputSpec
    output_spec = _TransformsOutputSpec

    def _step(self, cwd: Path) -> dict:
        files = coregister_bold(self.inputs.boldref, self.inputs.t1w, cwd)
        return {"transforms": [str(f) for f in files]}


class _T1wToMNIInputSpec(_StepInputSpec):
    t1w = File(exists=True, mandatory=True)
    lesion = File(exists=True, mandatory=True, desc="lesion mask, left out of the cost")
    transform = traits.Enum("SyN", "Affine", "Rigid", usedefault=True,
                            desc="model after the rigid stage (or the initial affine)")
    initial = traits.List(File(exists=True), desc="T1w -> template affine to start from")


class _T1wToMNIOutputSpec(_TransformsOutputSpec):
    template = File(exists=True, desc="the template image the T1w was registered to")


class T1wToMNI(_NativeStep):
    """T1w -> MNI152NLin2009cAsym, lesion masked (:func:`normalise_session`)."""

    input_spec = _T1wToMNIInputSpec
    output_spec = _T1wToMNIOutputSpec

    def _step(self, cwd: Path) -> dict:
        initial = self.inputs.initial[0] if (isdefined(self.inputs.initial)
                                             and self.inputs.initial) else None
        result = normalise_session(self.inputs.t1w, self.inputs.lesion, self.inputs.transform,
                                   cwd, initial=initial)
        return {"transforms": [str(f) for f in result.transforms],
                "template": str(result.template)}


class _ApplyInputSpec(_StepInputSpec):
    bold = File(exists=True, mandatory=True, desc="raw BOLD run (4D)")
    motion_transforms = traits.List(File(exists=True), mandatory=True)
    coregistration = traits.List(File(exists=True), mandatory=True)
    normalisation = traits.List(File(exists=True), mandatory=True)
    template = File(exists=True, mandatory=True)
    lesion = File(exists=True, mandatory=True)
    reference = File(exists=True, desc="image whose grid the outputs take")


class _ApplyOutputSpec(TraitedSpec):
    bold = File(exists=True)
    mask = File(exists=True)
    lesion_mask = File(exists=True)


class ApplyTransforms(_NativeStep):
    """Each raw volume resampled once onto the MNI grid (:func:`resample_session`)."""

    input_spec = _ApplyInputSpec
    output_spec = _ApplyOutputSpec

    def _step(self, cwd: Path) -> dict:
        inputs = self.inputs
        reference = inputs.reference if isdefined(inputs.reference) else None
        result = resample_session(inputs.bold, inputs.motion_transforms, inputs.coregistration,
                                  inputs.normalisation, inputs.template, inputs.lesion, cwd,
                                  reference=reference)
        return {"bold": str(result.bold), "mask": str(result.mask),
                "lesion_mask": str(result.lesion_mask)}


class _ConfoundsInputSpec(_StepInputSpec):
    motion_params = File(exists=True, mandatory=True)
    bold = File(exists=True, mandatory=True, desc="resampled BOLD")
    mask = File(exists=True, mandatory=True)


class _ConfoundsOutputSpec(TraitedSpec):
    confounds = File(exists=True)


class NativeConfounds(_NativeStep):
    """fMRIPrep's confounds table (:func:`write_confounds`)."""

    input_spec = _ConfoundsInputSpec
    output_spec = _ConfoundsOutputSpec

    def _step(self, cwd: Path) -> dict:
        inputs = self.inputs
        return {"confounds": str(write_confounds(inputs.motion_params, inputs.bold, inputs.mask,
                                                 cwd))}


class _WriteInputSpec(_StepInputSpec):
    fmriprep_dir = traits.Str(mandatory=True, desc="derivatives folder to write")
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str("passivewrist", usedefault=True)
    bold = File(exists=True, mandatory=True)
    mask = File(exists=True, mandatory=True)
    lesion_mask = File(exists=True, mandatory=True)
    confounds = File(exists=True, mandatory=True)
    smoothing_fwhm = traits.Float(0.0, usedefault=True)
    raw_sidecar = traits.Dict(desc="the raw BOLD's JSON metadata (SliceTiming)")


class _WriteOutputSpec(TraitedSpec):
    fmriprep_dir = traits.Str(desc="the derivatives folder (fMRIPrep layout)")
    bold = File(exists=True)
    mask = File(exists=True)
    confounds = File(exists=True)
    lesion_mask = File(exists=True)


class WriteNativeOutputs(_NativeStep):
    """The session's files into the fMRIPrep layout (:func:`write_outputs`)."""

    input_spec = _WriteInputSpec
    output_spec = _WriteOutputSpec

    def _step(self, cwd: Path) -> dict:
        inputs = self.inputs
        names = write_outputs(inputs.fmriprep_dir, inputs.subject, inputs.session, inputs.task,
                              bold=inputs.bold, mask=inputs.mask,
                              lesion_mask=inputs.lesion_mask, confounds=inputs.confounds,
                              smoothing_fwhm=inputs.smoothing_fwhm,
                              raw_sidecar=inputs.raw_sidecar if isdefined(inputs.raw_sidecar)
                              else None)
        return {"fmriprep_dir": inputs.fmriprep_dir,
                **{key: str(names[key]) for key in ("bold", "mask", "confounds",
                                                     "lesion_mask")}}
