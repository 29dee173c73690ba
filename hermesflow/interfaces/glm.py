"""Nipype door to the first-level GLM (:mod:`hermesflow.glm.model`)."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.glm.model import fit_session_glm


class _SessionGLMInputSpec(BaseInterfaceInputSpec):
    bold = File(exists=True, mandatory=True, desc="preprocessed BOLD (4D)")
    mask = File(exists=True, mandatory=True, desc="brain mask on the BOLD grid")
    confounds = File(exists=True, mandatory=True, desc="fMRIPrep confounds TSV")
    events = File(exists=True, mandatory=True, desc="BIDS events TSV")
    t_r = traits.Float(mandatory=True, desc="repetition time (s)")
    confound_columns = traits.List(traits.Str, mandatory=True)
    hrf_model = traits.Str("glover", usedefault=True)
    high_pass = traits.Float(0.01, usedefault=True)
    noise_model = traits.Str("ar1", usedefault=True)
    smoothing_fwhm = traits.Float(0.0, usedefault=True)
    contrast = traits.Str("move", usedefault=True)


class _SessionGLMOutputSpec(TraitedSpec):
    effect = File(exists=True)
    variance = File(exists=True)
    t = File(exists=True)
    z = File(exists=True)
    psc = File(exists=True)
    baseline = File(exists=True)
    design = File(exists=True)


class SessionGLM(SimpleInterface):
    """Fit the first-level GLM of one session (see :func:`fit_session_glm`)."""

    input_spec = _SessionGLMInputSpec
    output_spec = _SessionGLMOutputSpec

    def _run_interface(self, runtime):
        self._results.update(fit_session_glm(
            self.inputs.bold, self.inputs.mask, self.inputs.confounds, self.inputs.events,
            self.inputs.t_r, runtime.cwd,
            confound_columns=list(self.inputs.confound_columns),
            hrf_model=self.inputs.hrf_model,
            high_pass=self.inputs.high_pass,
            noise_model=self.inputs.noise_model,
            smoothing_fwhm=self.inputs.smoothing_fwhm,
            contrast=self.inputs.contrast,
        ))
        return runtime
