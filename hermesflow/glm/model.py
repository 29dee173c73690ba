"""First-level GLM of the passive-wrist task: nilearn's FirstLevelModel's model, one per run.

The model of a run: the configured conditions of ``events.tsv`` (``move`` by default) as blocks
convolved with an HRF (Glover by default), a cosine drift basis (high-pass 0.01 Hz), the
configured confounds (6 motion parameters and framewise displacement by default; none at all
with ``confounds = []``), AR(1) noise.  Non-steady-state volumes leave through a sample mask
(:mod:`hermesflow.glm.confounds`); when fMRIPrep corrected slice timing (``SliceTimingCorrected``
in the preprocessed BOLD's sidecar), the design is sampled at its reference, ``StartTime / TR``.
The data are *not* scaled, so the effect map is in scanner units; the percent-signal-change
map divides it by the voxel's baseline, the fitted ``constant`` of the design.

The design is nilearn's (``make_first_level_design_matrix`` sampled as ``FirstLevelModel``
samples it); the BOLD is read once, float32, inside the mask (:mod:`hermesflow.glm.bold`); the
fit is nilearn's OLS + binned AR(1) refit, vectorised over the voxels of each AR bin
(:mod:`hermesflow.glm.ar1`), whose maps equal ``FirstLevelModel``'s.

Several runs of a session are fitted one by one and combined by nilearn's precision-weighted
fixed effects (:class:`~hermesflow.glm.maps.FittedContrast` with ``runs``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm.first_level import make_first_level_design_matrix

from hermesflow.bids.layout import check_events
from hermesflow.derivatives.writing import write_json, write_nifti
from hermesflow.errors import InputError, RegistryError
from hermesflow.glm import sanity
from hermesflow.glm.ar1 import RunModel, fit_glm
from hermesflow.glm.bold import open_bold
from hermesflow.glm.confounds import read_confounds
from hermesflow.glm.maps import STAT_MAPS, FittedContrast
from hermesflow.glm.options import check_model_options, contrast_conditions  # noqa: F401 (re-exported)


def load_confounds(path: str | Path, columns: list[str], n_volumes: int) -> pd.DataFrame:
    """The chosen columns of an fMRIPrep confounds table, demeaned, first-row gaps filled
    (see :func:`hermesflow.glm.confounds.read_confounds`, which also gives the sample mask)."""
    return read_confounds(path, columns, n_volumes).regressors


def slice_time_reference(sidecar: str | Path | None, t_r: float) -> float:
    """nilearn's ``slice_time_ref`` (a fraction of the TR) from the preprocessed BOLD sidecar.

    fMRIPrep writes ``SliceTimingCorrected`` and, when true, ``StartTime`` (s): the time within
    the TR the corrected series are sampled at.  hermesflow's native preprocessing records
    instead of correcting (``SliceTimingCorrected: false``) and writes the middle of the slice
    acquisitions as ``StartTime``, the one time that represents every slice best.  Either way
    the design is sampled at ``StartTime``; without it, at the start of each volume (0).
    """
    if not sidecar or not Path(sidecar).is_file():
        return 0.0
    metadata = json.loads(Path(sidecar).read_text())
    start = metadata.get("StartTime")
    if start is None:
        if metadata.get("SliceTimingCorrected"):
            raise InputError(sidecar, "SliceTimingCorrected is true but StartTime is missing",
                             "use the sidecar fMRIPrep wrote with this BOLD run")
        return 0.0
    if not 0 <= float(start) < t_r:
        raise InputError(sidecar, f"StartTime {start} s is not within the TR ({t_r} s)",
                         "use the sidecar fMRIPrep wrote with this BOLD run")
    return float(start) / t_r


def build_design(events: pd.DataFrame, regressors: pd.DataFrame | None,
                 sample_mask: np.ndarray | None, n_volumes: int, t_r: float, *,
                 slice_time_ref: float = 0.0, hrf_model: str = "glover",
                 high_pass: float = 0.01) -> pd.DataFrame:
    """The run's design as nilearn's ``FirstLevelModel.fit`` builds it (its defaults: cosine
    drift, ``drift_order=1``, ``fir_delays=[0]``, ``min_onset=-24``), kept volumes only."""
    frame_times = np.linspace(slice_time_ref * t_r, (n_volumes - 1 + slice_time_ref) * t_r,
                              n_volumes)
    design = make_first_level_design_matrix(
        frame_times, events, hrf_model=hrf_model, drift_model="cosine", high_pass=high_pass,
        drift_order=1, fir_delays=[0], min_onset=-24,
        add_regs=None if regressors is None else regressors.to_numpy(),
        add_reg_names=None if regressors is None else regressors.columns.tolist())
    return design if sample_mask is None else design.iloc[sample_mask, :]


def fit_run(bold: str, mask: str, confounds: str | None, events: str, t_r: float, *,
            confound_columns: list[str], conditions: Sequence[str] = ("move",),
            contrast: str = "move", dummy_scans: int = -1, sidecar: str | None = None,
            hrf_model: str = "glover", high_pass: float = 0.01, noise_model: str = "ar1",
            smoothing_fwhm: float | None = None) -> tuple[FittedContrast, dict]:
    """Fit one run; return its contrast and what went in (volumes kept, slice reference)."""
    bold_img = open_bold(bold)
    if bold_img.ndim != 4 or bold_img.shape[-1] < 10:
        raise InputError(bold, f"is not a BOLD series (shape {bold_img.shape})",
                         "point to the preprocessed 4D BOLD run")
    n_volumes = bold_img.shape[-1]
    # Degenerate data must stop here, in one line, not become "activation" (glm.sanity).
    mask_img = nib.load(mask)
    sanity.check_same_grid({bold: bold_img, mask: mask_img})
    sanity.check_repetition_time(t_r, sanity.header_repetition_time(bold_img), bold)
    inside = np.asarray(mask_img.dataobj) > 0
    # The one read of the BOLD: float32, in-mask voxels only (glm.bold).
    data = sanity.read_checked_series(bold_img, bold, inside, smoothing_fwhm or None)
    events_table = check_events(Path(events), list(conditions))
    for condition in conditions:
        # Before the fit: nilearn drops events without an onset quietly.
        sanity.check_events_in_scan(events_table, n_volumes, t_r, events, condition=condition)
    events_table = events_table[events_table["trial_type"].astype(str).isin(conditions)]
    run_confounds = read_confounds(confounds or None, list(confound_columns), n_volumes,
                                   dummy_scans=dummy_scans, bold=bold)
    reference = slice_time_reference(sidecar, t_r)
    design = build_design(events_table[["onset", "duration", "trial_type"]],
                          run_confounds.regressors, run_confounds.sample_mask, n_volumes, t_r,
                          slice_time_ref=reference, hrf_model=hrf_model, high_pass=high_pass)
    for condition in conditions:
        sanity.check_task_regressor(design, condition, events, others=[
            c for c in design.columns if c not in conditions])
    if run_confounds.sample_mask is not None:
        data = data[run_confounds.sample_mask]
    glm = fit_glm(data, design.to_numpy(), noise_model=noise_model)
    del data
    fit = FittedContrast(RunModel(glm, design, inside, mask_img.affine), contrast,
                         mask_img, dof=glm.df_residuals)
    info = {"bold": bold, "n_volumes": n_volumes, "n_dummy": run_confounds.n_dummy,
            "slice_time_ref": reference}
    return fit, info


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def fit_session_glm(
    bold: str | Sequence[str],
    mask: str | Sequence[str],
    confounds: str | None | Sequence[str | None],
    events: str | Sequence[str],
    t_r: float | Sequence[float],
    out_dir: str | Path,
    *,
    confound_columns: list[str],
    hrf_model: str = "glover",
    high_pass: float = 0.01,
    noise_model: str = "ar1",
    smoothing_fwhm: float | None = None,
    contrast: str = "move",
    conditions: Sequence[str] | None = None,
    dummy_scans: int = -1,
    sidecar: str | None | Sequence[str | None] = None,
    maps: Iterable[str] | None = None,
    sync: bool = False,
) -> dict[str, str]:
    """Fit the session's GLM (one model per run, fixed effects across runs); write its maps.

    Parameters
    ----------
    bold, mask, confounds, events, t_r, sidecar
        One value per run (a single value for a one-run session); ``confounds`` may be None
        when ``confound_columns`` is empty, ``sidecar`` (the preprocessed BOLD's JSON) None.
    conditions
        trial_types modelled (default: the names in ``contrast``).
    dummy_scans
        Volumes dropped at the start of each run; -1: fMRIPrep's non-steady-state volumes.
    maps : iterable of str, optional
        Names of the maps to compute (:data:`hermesflow.glm.maps.STAT_MAPS`); every
        registered map by default.
    sync
        Flush each file to disk (:mod:`hermesflow.derivatives.writing`).  ``out_dir`` is a
        Nipype node's working folder, a cache, by default: the maps sink copies the maps to
        OUTPUT_DIR and flushes them there.

    Returns
    -------
    dict
        Path of each map by name (``effect``, ``variance``, ``t``, ``z``, ``psc``, ``baseline``
        and any other registered map); ``design`` (the first run's design matrix TSV; every
        run's is written), ``mask`` (the voxels inside every run's mask) and ``info`` (JSON:
        ``n_runs`` and, per run, volumes, dummy scans and slice-time reference).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(STAT_MAPS if maps is None else maps)
    unknown = [n for n in names if n not in STAT_MAPS]
    if unknown:
        raise RegistryError(f"unknown stat map(s) {', '.join(unknown)}; "
                            f"registered: {', '.join(STAT_MAPS)}")
    bolds = _as_list(bold)
    n = len(bolds)
    per_run = {key: (_as_list(value) if isinstance(value, (list, tuple)) else [value] * n)
               for key, value in {"mask": mask, "confounds": confounds, "events": events,
                                  "t_r": t_r, "sidecar": sidecar}.items()}
    if any(len(values) != n for values in per_run.values()):
        raise InputError(out, "runs given with unequal numbers of masks, confounds, events",
                         "pass one of each per run")
    conditions = list(conditions or contrast_conditions(contrast))
    fits, infos, designs = [], [], {}
    for k in range(n):
        fit, info = fit_run(
            bolds[k], per_run["mask"][k], per_run["confounds"][k], per_run["events"][k],
            float(per_run["t_r"][k]), confound_columns=confound_columns, conditions=conditions,
            contrast=contrast, dummy_scans=dummy_scans, sidecar=per_run["sidecar"][k],
            hrf_model=hrf_model, high_pass=high_pass, noise_model=noise_model,
            smoothing_fwhm=smoothing_fwhm)
        fits.append(fit)
        infos.append(info)
        designs[k] = str(out / (f"design_run{k + 1}.tsv" if n > 1 else "design.tsv"))
        fit.model.design_matrices_[0].to_csv(designs[k], sep="\t", index_label="frame_time")
    inside = np.logical_and.reduce([np.asarray(f.mask.dataobj) > 0 for f in fits])
    session_mask = nib.Nifti1Image(inside.astype(np.uint8), fits[0].mask.affine)
    session = fits[0] if n == 1 else FittedContrast(
        None, contrast, session_mask, runs=tuple(fits), dof=sum(f.dof for f in fits))
    paths = {name: str(write_nifti(out / f"{name}.nii.gz", session.map(name), sync=sync))
             for name in names}
    paths["design"] = designs[0]
    paths["mask"] = str(write_nifti(out / "mask.nii.gz", session_mask, sync=sync))
    paths["info"] = str(write_json(out / "glm.json", {
        "n_runs": n, "contrast": contrast, "conditions": conditions,
        "confounds": list(confound_columns), "runs": infos}, sync=sync))
    return paths
