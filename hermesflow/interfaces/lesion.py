"""Nipype door to carrying a lesion mask onto the BOLD's grid (:mod:`hermesflow.preproc.lesion`)."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.preproc.gather import lesion_on_bold_grid


class _LesionToBoldInputSpec(BaseInterfaceInputSpec):
    lesion_mask = traits.Either(None, File(exists=True), default=None, usedefault=True,
                                desc="a lesion mask already in the BOLD's space (passed on)")
    raw_lesion = traits.Either(None, File(exists=True), default=None, usedefault=True,
                               desc="the lesion drawn on the T1w")
    transforms = traits.List(File(exists=True), desc="fMRIPrep's transforms, ANTs order")
    reference = File(exists=True, mandatory=True, desc="an image on the BOLD's grid")


class _LesionToBoldOutputSpec(TraitedSpec):
    lesion_mask = traits.Either(None, File(exists=True), desc="0/1 lesion on the BOLD's grid")


class LesionToBold(SimpleInterface):
    """The session's lesion mask on the BOLD's grid, or None when it has none
    (see :func:`~hermesflow.preproc.gather.lesion_on_bold_grid`)."""

    input_spec = _LesionToBoldInputSpec
    output_spec = _LesionToBoldOutputSpec

    def _run_interface(self, runtime):
        self._results["lesion_mask"] = lesion_on_bold_grid(
            self.inputs.lesion_mask, self.inputs.raw_lesion, list(self.inputs.transforms or []),
            self.inputs.reference, runtime.cwd)
        return runtime
