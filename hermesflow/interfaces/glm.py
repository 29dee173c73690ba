"""Nipype door to the first-level GLM (:mod:`hermesflow.glm.model`)."""

from __future__ import annotations

import json

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.glm.maps import STAT_MAPS, derivative_maps, roi_maps


class _SessionGLMInputSpec(BaseInterfaceInputSpec):
    bold = traits.List(File(exists=True), mandatory=True, desc="preprocessed BOLD per run")
    mask = traits.List(File(exists=True), mandatory=True, desc="brain mask per run")
    confounds = traits.List(traits.Str, desc="fMRIPrep confounds TSV per run ('': none)")
    events = traits.List(File(exists=True), mandatory=True, desc="BIDS events TSV per run")
    t_r = traits.List(traits.Float, mandatory=True, desc="repetition time per run (s)")
    sidecar = traits.List(traits.Str, desc="preprocessed BOLD's JSON per run ('': none)")
    confound_columns = traits.List(traits.Str, mandatory=True)
    conditions = traits.List(traits.Str, value=["move"], usedefault=True)
    dummy_scans = traits.Int(-1, usedefault=True, desc="-1: fMRIPrep's non-steady-state")
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
    design = File(exists=True, desc="design matrix TSV (first run)")
    mask = File(exists=True, desc="the voxels inside every run's brain mask")
    info = traits.Dict(desc="n_runs and, per run, volumes, dummy scans, slice-time reference")


class SessionGLM(SimpleInterface):
    """Fit the first-level GLM of one session (see :func:`fit_session_glm`)."""

    input_spec = _SessionGLMInputSpec
    output_spec = _SessionGLMOutputSpec

    def __init__(self, **inputs):
        # Read the registry when the node is built, not when this module was imported.
        inputs.setdefault("stat_maps", list(STAT_MAPS))
        super().__init__(**inputs)

    def _run_interface(self, runtime):
        # Imported here: building the graph (every run, cached or not) needs no model code.
        from hermesflow.glm.model import fit_session_glm

        n_runs = len(self.inputs.bold)
        paths = fit_session_glm(
            list(self.inputs.bold), list(self.inputs.mask),
            list(self.inputs.confounds or [""] * n_runs), list(self.inputs.events),
            list(self.inputs.t_r), runtime.cwd,
            confound_columns=list(self.inputs.confound_columns),
            hrf_model=self.inputs.hrf_model,
            high_pass=self.inputs.high_pass,
            noise_model=self.inputs.noise_model,
            smoothing_fwhm=self.inputs.smoothing_fwhm,
            contrast=self.inputs.contrast,
            conditions=list(self.inputs.conditions),
            dummy_scans=self.inputs.dummy_scans,
            sidecar=list(self.inputs.sidecar or [""] * n_runs),
            maps=list(self.inputs.stat_maps),
        )
        self._results["design"] = paths.pop("design")
        self._results["mask"] = paths.pop("mask")
        with open(paths.pop("info")) as handle:
            self._results["info"] = json.load(handle)
        self._results["maps"] = paths
        self._results["derivative_maps"] = derivative_maps(paths)
        self._results["roi_maps"] = roi_maps(paths)
        return runtime
