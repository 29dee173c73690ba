"""The session's last two steps: the confounds table, and the files in the fMRIPrep layout.

:func:`write_outputs` is the only native step that writes outside its own working folder; it
puts each file where :func:`hermesflow.preproc.collect.collect_session` looks for it.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.derivatives.description import dataset_description as build_description
from hermesflow.derivatives.description import hermesflow_generated_by, write_dataset_description
from hermesflow.derivatives.writing import copy_file, write_json, write_nifti, write_tsv
from hermesflow.preproc.confounds import a_comp_cor, confounds_table, non_steady_state_outliers
from hermesflow.preproc.native.motion import read_motion
from hermesflow.preproc.native.resample import SPACE, grid_3d
from hermesflow.preproc.native.tissue import tissue_masks, tissue_priors


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
    """fMRIPrep's confounds table: motion and its expansions, FD, the global, CSF and white
    matter signals, aCompCor and non-steady-state outliers.

    Signals are means of the resampled, unsmoothed BOLD: in the brain mask, and in the
    eroded CSF and white-matter masks of the template's priors; aCompCor takes the voxels of
    both noise masks (fMRIPrep's ``combined`` mask).
    """
    img = nib.load(str(bold))
    series = np.asarray(img.dataobj, dtype=np.float32)
    inside = np.asarray(nib.load(str(mask)).dataobj) > 0
    t_r = float(img.header.get_zooms()[3])
    global_signal = series[inside].mean(axis=0)
    masks = tissue_masks(tissue_priors(grid_3d(bold)), inside)
    tissue = {name: series[masks[name]].mean(axis=0) for name in ("csf", "white_matter")}
    noise = masks["csf"] | masks["white_matter"]
    extra = pd.concat([a_comp_cor(series[noise].T.astype(np.float64), t_r),
                       non_steady_state_outliers(global_signal)], axis=1)
    table = confounds_table(read_motion(motion_parameters), global_signal, tissue, extra)
    return write_tsv(Path(workdir) / "desc-confounds_timeseries.tsv", table)


def slice_timing_metadata(sidecar: dict) -> dict:
    """fMRIPrep's slice-timing fields of the preprocessed BOLD's JSON, without correcting.

    Blocks of 20-30 s are long next to the 0-TR spread of slice times, so interpolating every
    voxel in time would cost a resampling and gain nothing measurable; instead ``StartTime`` is
    the middle of the slice acquisitions, which the GLM takes as ``slice_time_ref``
    (``StartTime / RepetitionTime``), so the model is aligned with the average slice.
    """
    times = sidecar.get("SliceTiming")
    if not times:
        return {"SliceTimingCorrected": False}
    times = np.asarray(times, float)
    return {"SliceTimingCorrected": False, "StartTime": float((times.min() + times.max()) / 2)}


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
    raw_sidecar: dict | None = None,
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
    raw_sidecar : dict, optional
        The raw BOLD's JSON metadata (``SliceTiming``: see :func:`slice_timing_metadata`).

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
                                    "SkullStripped": False, "SmoothingFWHM": smoothing_fwhm,
                                    **slice_timing_metadata(raw_sidecar or {})})
    copy_file(mask, names["mask"])
    copy_file(lesion_mask, names["lesion_mask"])
    copy_file(confounds, names["confounds"])
    write_dataset_description(fmriprep_dir, dataset_description())
    return names
