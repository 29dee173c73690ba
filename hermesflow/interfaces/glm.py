"""Nipype door to the first-level GLM (:mod:`hermesflow.glm.model`)."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.glm.maps import STAT_MAPS, derivative_maps, roi_maps
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
    # An input, not a constant: registering a map changes the node's hash, so cached GLMs that
    # lack the new map are refitted (and an atlas change still leaves them alone).
    stat_maps = traits.List(traits.Str, desc="maps to compute (default: every registered map)")


class _SessionGLMOutputSpec(TraitedSpec):
    maps = traits.Dict(traits.Str, File(exists=True), desc="every computed map, by name")
    derivative_maps = traits.Dict(traits.Str, File(exists=True),
                                  desc="the maps written to OUTPUT_DIR, by name")
    roi_maps = traits.Dict(traits.Str, File(exists=True),
                           desc="the maps the ROI measures read, by name")
    design = File(exists=True, desc="design matrix TSV")


class SessionGLM(SimpleInterface):
    """Fit the first-level GLM of one session (see :func:`fit_session_glm`)."""

    input_spec = _SessionGLMInputSpec
    output_spec = _SessionGLMOutputSpec

    def __init__(self, **inputs):
        # Read the registry when the node is built, not when this module was imported.
        inputs.setdefault("stat_maps", list(STAT_MAPS))
        super().__init__(**inputs)

    def _run_interface(self, runtime):
        paths = fit_session_glm(
            self.inputs.bold, self.inputs.mask, self.inputs.confounds, self.inputs.events,
            self.inputs.t_r, runtime.cwd,
            confound_columns=list(self.inputs.confound_columns),
            hrf_model=self.inputs.hrf_model,
            high_pass=self.inputs.high_pass,
            noise_model=self.inputs.noise_model,
            smoothing_fwhm=self.inputs.smoothing_fwhm,
            contrast=self.inputs.contrast,
            maps=list(self.inputs.stat_maps),
        )
        self._results["design"] = paths.pop("design")
        self._results["maps"] = paths
        self._results["derivative_maps"] = derivative_maps(paths)
        self._results["roi_maps"] = roi_maps(paths)
        return runtime
