"""The ``--preproc native`` source: one session preprocessed with antspyx, fMRIPrep layout out.

One module per step; each step reads files, writes files into the folder it is given and
returns their paths, so a Nipype node per step caches its own outputs
(:func:`hermesflow.workflows.native.init_native_preproc_wf`):

1. raw inputs found and checked before anything starts (:func:`find_inputs`):
   their headers, the sidecar's ``RepetitionTime`` and the lesion's grid are checked
   (:func:`check_inputs`);
2. ``brain``: the T1w brain-extracted by registration to a skull-on template, the template's
   mask carried back and refined (:func:`extract_brain`);
3. ``motion``: every BOLD volume registered rigidly to the run's temporal mean; the six rigid
   parameters per volume in fMRIPrep's column names (:func:`estimate_head_motion`);
4. ``registration``: BOLD reference -> T1w brain (rigid), T1w brain -> MNI152NLin2009cAsym
   (``SyN`` by default from brain extraction's affine, ``Affine`` on request) with the lesion
   left out of the cost;
5. ``resample``: every volume resampled once through the composed transforms onto the output
   grid (a given reference image, else the template at the BOLD voxel size), with the lesion
   mask and a brain mask on the same grid;
6. ``outputs``: the confounds table, then everything written atomically in the fMRIPrep
   layout, so that :func:`hermesflow.preproc.collect.collect_session` finds it.

:func:`run_native_session` runs the same steps in sequence without Nipype.
"""

from __future__ import annotations

from hermesflow.bids.anat import NativeInputs, find_inputs
from hermesflow.preproc.native.brain import BrainExtraction, extract_brain, template_head
from hermesflow.preproc.native.checks import bold_sidecar, check_inputs
from hermesflow.preproc.native.motion import (
    HeadMotion,
    estimate_head_motion,
    motion_correct,
    read_motion,
    rigid_parameters,
    transform_matrix,
)
from hermesflow.preproc.native.outputs import (
    dataset_description,
    output_names,
    slice_timing_metadata,
    write_confounds,
    write_outputs,
)
from hermesflow.preproc.native.registration import (
    TRANSFORMS,
    Normalisation,
    RegistrationError,
    coregister_bold,
    lesion_free_mask,
    normalise_session,
    normalise_t1w,
)
from hermesflow.preproc.native.resample import (
    SPACE,
    Resampled,
    brain_mask,
    resample_session,
    template_image,
    warp_series,
)
from hermesflow.preproc.native.session import NativeResult, run_native_session

__all__ = [
    "BrainExtraction", "bold_sidecar", "check_inputs", "extract_brain", "slice_timing_metadata",
    "template_head",
    "SPACE", "TRANSFORMS", "HeadMotion", "NativeInputs", "NativeResult", "Normalisation",
    "RegistrationError", "Resampled", "brain_mask", "coregister_bold", "dataset_description",
    "estimate_head_motion", "find_inputs", "lesion_free_mask", "motion_correct",
    "normalise_session", "normalise_t1w", "output_names", "read_motion", "resample_session",
    "rigid_parameters", "run_native_session", "template_image", "transform_matrix",
    "warp_series", "write_confounds", "write_outputs",
]
