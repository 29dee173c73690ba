"""One session through every native step in sequence, without Nipype.

The Nipype graph (:func:`hermesflow.workflows.native.init_native_preproc_wf`) calls the very
same step functions, one cached node each; this is the plain-Python route for tests,
benchmarks and interactive use.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hermesflow.bids.anat import find_inputs
from hermesflow.preproc.native.brain import extract_brain
from hermesflow.preproc.native.checks import check_inputs
from hermesflow.preproc.native.motion import estimate_head_motion, read_motion
from hermesflow.preproc.native.outputs import write_confounds, write_outputs
from hermesflow.preproc.native.registration import coregister_bold, normalise_session
from hermesflow.preproc.native.resample import resample_session

LOGGER = logging.getLogger("hermesflow")


@dataclass
class NativeResult:
    """What :func:`run_native_session` wrote (paths) and the motion it found."""

    fmriprep_dir: str
    bold: str
    mask: str
    confounds: str
    lesion_mask: str
    motion: np.ndarray


def run_native_session(
    bids_dir: str | Path,
    fmriprep_dir: str | Path,
    subject: str,
    session: str,
    *,
    task: str = "passivewrist",
    reference: str | Path | None = None,
    smoothing_fwhm: float = 0.0,
    transform: str = "SyN",
) -> NativeResult:
    """Preprocess one session and write it in the fMRIPrep layout under ``fmriprep_dir``.

    Parameters
    ----------
    bids_dir, fmriprep_dir : path
        The raw dataset; the derivatives folder to write (created if needed).
    subject, session : str
        Labels, with or without prefix.
    task : str
        The BOLD task.
    reference : path, optional
        An image whose grid the outputs take (e.g. an existing fMRIPrep BOLD of the session);
        default: the template at the BOLD voxel size.
    smoothing_fwhm : float
        Gaussian smoothing of the MNI BOLD, mm (0: none; the GLM can smooth instead).
    transform : {"Rigid", "Affine", "SyN"}
        The T1w -> template model after the rigid stage (or after brain extraction's affine).

    Returns
    -------
    NativeResult
    """
    subject, session = subject.removeprefix("sub-"), session.removeprefix("ses-")
    inputs = find_inputs(bids_dir, subject, session, task)
    sidecar = check_inputs(inputs, bids_dir, task)
    # The intermediate files live only as long as the call; the graph keeps them instead.
    with tempfile.TemporaryDirectory(prefix="hermesflow-native-") as tmp:
        work = Path(tmp)
        LOGGER.info("sub-%s ses-%s: head-motion estimation", subject, session)
        motion = estimate_head_motion(inputs.bold, work / "motion")
        brain = extract_brain(inputs.t1w, inputs.lesion, work / "brain")
        coregistration = coregister_bold(motion.boldref, brain.brain, work / "bold2t1w")
        initial = brain.transforms[0] if brain.transforms else None
        normalisation = normalise_session(brain.brain, inputs.lesion, transform,
                                          work / "t1w2mni", initial=initial)
        resampled = resample_session(inputs.bold, motion.transforms, coregistration,
                                     normalisation.transforms, normalisation.template,
                                     inputs.lesion, work / "apply", reference=reference)
        confounds = write_confounds(motion.parameters, resampled.bold, resampled.mask,
                                    work / "confounds")
        names = write_outputs(fmriprep_dir, subject, session, task, bold=resampled.bold,
                              mask=resampled.mask, lesion_mask=resampled.lesion_mask,
                              confounds=confounds, smoothing_fwhm=smoothing_fwhm,
                              raw_sidecar=sidecar)
        parameters = read_motion(motion.parameters)
    return NativeResult(fmriprep_dir=str(fmriprep_dir), bold=str(names["bold"]),
                        mask=str(names["mask"]), confounds=str(names["confounds"]),
                        lesion_mask=str(names["lesion_mask"]), motion=parameters)
