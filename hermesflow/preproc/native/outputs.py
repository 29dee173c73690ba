"""The session's last two steps: the confounds table, and the files in the fMRIPrep layout.

:func:`write_outputs` is the only native step that writes outside its own working folder; it
puts each file where :func:`hermesflow.preproc.collect.collect_session` looks for it.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from hermesflow.derivatives.description import dataset_description as build_description
from hermesflow.derivatives.description import hermesflow_generated_by, write_dataset_description
from hermesflow.derivatives.writing import copy_file, write_json, write_nifti, write_tsv
from hermesflow.preproc.confounds import confounds_table
from hermesflow.preproc.native.motion import read_motion
from hermesflow.preproc.native.resample import SPACE


def output_names(fmriprep_dir: str | Path, subject: str, session: str, task: str) -> dict:
    """fMRIPrep-layout paths of every output of one session."""
    base = Path(fmriprep_dir) / f"sub-{subject}" / f"ses-{session}"
    stem = f"sub-{subject}_ses-{session}_task-{task}"
    return {
        "bold": base / "func" / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz",
        "bold_json": base / "func" / f"{stem}_space-{SPACE}_desc-preproc_bold.json",
        "mask": base / "func" / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz",
        "confounds": base / "func" / f"{stem}_desc-confounds_timeseries.tsv",
        "lesion_mask": base / "anat" / f"sub-{subject}_ses-{session}_space-{SPACE}"
                                        "_label-lesion_roi.nii.gz",
    }


def dataset_description() -> dict:
    """``dataset_description.json`` of the native derivatives folder."""
    return build_description("hermesflow native preprocessing", generated_by=[
        hermesflow_generated_by("hermesflow-native", "antspyx motion correction and "
                                "registration to MNI152NLin2009cAsym (lesion masked), "
                                "fMRIPrep layout.")])


def write_confounds(motion_parameters: str | Path, bold: str | Path, mask: str | Path,
                    workdir: str | Path) -> Path:
    """fMRIPrep's confounds table: the motion columns, their expansions, FD, global signal.

    The global signal is the mean of the resampled, unsmoothed BOLD inside the brain mask.
    """
    series = np.asarray(nib.load(str(bold)).dataobj, dtype=np.float32)
    inside = np.asarray(nib.load(str(mask)).dataobj) > 0
    table = confounds_table(read_motion(motion_parameters), series[inside].mean(axis=0))
    return write_tsv(Path(workdir) / "desc-confounds_timeseries.tsv", table)


def write_outputs(
    fmriprep_dir: str | Path,
    subject: str,
    session: str,
    task: str,
    *,
    bold: str | Path,
    mask: str | Path,
    lesion_mask: str | Path,
    confounds: str | Path,
    smoothing_fwhm: float = 0.0,
) -> dict[str, Path]:
    """Put one session's files into ``fmriprep_dir`` in the fMRIPrep layout (atomically).

    Parameters
    ----------
    fmriprep_dir : path
        The derivatives folder (created if needed; its ``dataset_description.json`` too).
    subject, session, task : str
        Labels without prefix.
    bold, mask, lesion_mask, confounds : path
        The resampled run, its masks and its confounds table.
    smoothing_fwhm : float
        Gaussian smoothing of the BOLD, mm (0: none; the GLM can smooth instead).

    Returns
    -------
    dict
        :func:`output_names` of the session, every one written.
    """
    names = output_names(fmriprep_dir, subject, session, task)
    bold_img = nib.load(str(bold))
    t_r = float(bold_img.header.get_zooms()[3])
    if smoothing_fwhm > 0:
        from nilearn.image import smooth_img

        smoothed = smooth_img(bold_img, smoothing_fwhm)
        smoothed.header.set_xyzt_units("mm", "sec")
        smoothed.header.set_zooms(smoothed.header.get_zooms()[:3] + (t_r,))
        write_nifti(names["bold"], smoothed)
    else:
        copy_file(bold, names["bold"])
    write_json(names["bold_json"], {"RepetitionTime": t_r, "TaskName": task,
                                    "SkullStripped": False, "SmoothingFWHM": smoothing_fwhm})
    copy_file(mask, names["mask"])
    copy_file(lesion_mask, names["lesion_mask"])
    copy_file(confounds, names["confounds"])
    write_dataset_description(fmriprep_dir, dataset_description())
    return names
