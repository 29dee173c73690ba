"""The ``--preproc native`` source: one session preprocessed with antspyx, fMRIPrep layout out.

One module per step; each step reads files, writes files into the folder it is given and
returns their paths, so a Nipype node per step caches its own outputs
(:func:`hermesflow.workflows.native.init_native_preproc_wf`):

1. raw inputs checked before anything starts (:func:`find_inputs`);
2. ``motion``: every BOLD volume registered rigidly to the run's temporal mean; the six rigid
   parameters per volume in fMRIPrep's column names (:func:`estimate_head_motion`);
3. ``registration``: BOLD reference -> T1w (rigid), T1w -> MNI152NLin2009cAsym (``Affine``
   by default, ``SyN`` on request) with the lesion left out of the cost;
4. ``resample``: every volume resampled once through the composed transforms onto the output
   grid (a given reference image, else the template at the BOLD voxel size), with the lesion
   mask and a brain mask on the same grid;
5. ``outputs``: the confounds table, then everything written atomically in the fMRIPrep
   layout, so that :func:`hermesflow.preproc.collect.collect_session` finds it.

:func:`run_native_session` runs the same steps in sequence without Nipype.
"""

from __future__ import annotations

from hermesflow.bids.anat import NativeInputs, find_inputs
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
    "SPACE", "TRANSFORMS", "HeadMotion", "NativeInputs", "NativeResult", "Normalisation",
    "RegistrationError", "Resampled", "brain_mask", "coregister_bold", "dataset_description",
    "estimate_head_motion", "find_inputs", "lesion_free_mask", "motion_correct",
    "normalise_session", "normalise_t1w", "output_names", "read_motion", "resample_session",
    "rigid_parameters", "run_native_session", "template_image", "transform_matrix",
    "warp_series", "write_confounds", "write_outputs",
]
