"""Nipype door to native preprocessing (:mod:`hermesflow.preproc.native`)."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from hermesflow.preproc.native import run_native_session


class _NativePreprocInputSpec(BaseInterfaceInputSpec):
    bids_dir = traits.Str(mandatory=True, desc="raw BIDS dataset (checked when the node runs)")
    fmriprep_dir = traits.Str(mandatory=True, desc="derivatives folder to write")
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    task = traits.Str("passivewrist", usedefault=True)
    reference = File(exists=True, desc="image whose grid the outputs take")
    smoothing_fwhm = traits.Float(0.0, usedefault=True)
    transform = traits.Enum("Affine", "Rigid", "SyN", usedefault=True,
                            desc="T1w -> template model after the rigid stage")


class _NativePreprocOutputSpec(TraitedSpec):
    fmriprep_dir = traits.Str(desc="the derivatives folder (fMRIPrep layout)")
    bold = File(exists=True)
    mask = File(exists=True)
    confounds = File(exists=True)
    lesion_mask = File(exists=True)


class NativePreproc(SimpleInterface):
    """One session through :func:`run_native_session`."""

    input_spec = _NativePreprocInputSpec
    output_spec = _NativePreprocOutputSpec

    def _run_interface(self, runtime):
        reference = self.inputs.reference if isdefined(self.inputs.reference) else None
        result = run_native_session(
            self.inputs.bids_dir, self.inputs.fmriprep_dir, self.inputs.subject,
            self.inputs.session, task=self.inputs.task, reference=reference,
            smoothing_fwhm=self.inputs.smoothing_fwhm, transform=self.inputs.transform,
        )
        for key in ("fmriprep_dir", "bold", "mask", "confounds", "lesion_mask"):
            self._results[key] = getattr(result, key)
        return runtime
