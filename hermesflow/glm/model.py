"""First-level GLM of the passive-wrist task: nilearn's FirstLevelModel, one per run.

The model of a run: the configured conditions of ``events.tsv`` (``move`` by default) as blocks
convolved with an HRF (Glover by default), a cosine drift basis (high-pass 0.01 Hz), the
configured confounds (6 motion parameters and framewise displacement by default; none at all
with ``confounds = []``), AR(1) noise.  Non-steady-state volumes leave through a sample mask
(:mod:`hermesflow.glm.confounds`); when fMRIPrep corrected slice timing (``SliceTimingCorrected``
in the preprocessed BOLD's sidecar), the design is sampled at its reference, ``StartTime / TR``.
The data are *not* scaled, so the effect map is in scanner units; the percent-signal-change
map divides it by the voxel's baseline, the fitted ``constant`` of the design.

Several runs of a session are fitted one by one and combined by nilearn's precision-weighted
fixed effects (:class:`~hermesflow.glm.maps.FittedContrast` with ``runs``).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm.first_level import FirstLevelModel

from hermesflow.bids.layout import check_events
from hermesflow.derivatives.writing import write_json, write_nifti
from hermesflow.errors import ConfigError, InputError, RegistryError
from hermesflow.glm import sanity
from hermesflow.glm.confounds import read_confounds
from hermesflow.glm.maps import STAT_MAPS, FittedContrast

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_model_options(conditions: Sequence[str], contrast: str, dummy_scans: int) -> None:
    """Refuse a model that cannot be built: no condition, a contrast of unmodelled names."""
    if not conditions or not all(isinstance(c, str) and c for c in conditions):
        raise ConfigError("[workflow] conditions: give at least one trial_type, e.g. ['move'] "
                          "-- set it in the config or with --conditions")
    unknown = sorted(set(_NAME.findall(contrast)) - set(conditions))
    if unknown:
        raise ConfigError(f"[workflow] contrast {contrast!r} uses {', '.join(unknown)}, not a "
                          f"modelled condition ({', '.join(conditions)}) -- add it to "
                          "--conditions or fix --contrast")
    if int(dummy_scans) < -1:
        raise ConfigError(f"--dummy-scans {dummy_scans}: must be 0 or more -- leave it out to "
                          "use fMRIPrep's non_steady_state_outlier columns")


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


def _read_bold(bold: str) -> nib.Nifti1Image:
    try:
        # Read once, in float32: a truncated file fails here, with its name, not deep in nilearn.
        source = nib.load(bold)
        return nib.Nifti1Image(source.get_fdata(dtype=np.float32), source.affine, source.header)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError) as err:
        raise InputError(bold, f"cannot be read as NIfTI ({type(err).__name__}: {err})",
                         "rerun the preprocessing of this session") from None


def fit_run(bold: str, mask: str, confounds: str | None, events: str, t_r: float, *,
            confound_columns: list[str], conditions: Sequence[str] = ("move",),
            contrast: str = "move", dummy_scans: int = -1, sidecar: str | None = None,
            hrf_model: str = "glover", high_pass: float = 0.01, noise_model: str = "ar1",
            smoothing_fwhm: float | None = None) -> tuple[FittedContrast, dict]:
    """Fit one run; return its contrast and what went in (volumes kept, slice reference)."""
    bold_img = _read_bold(bold)
    if bold_img.ndim != 4 or bold_img.shape[-1] < 10:
        raise InputError(bold, f"is not a BOLD series (shape {bold_img.shape})",
                         "point to the preprocessed 4D BOLD run")
    n_volumes = bold_img.shape[-1]
    # Degenerate data must stop here, in one line, not become "activation" (glm.sanity).
    mask_img = nib.load(mask)
    sanity.check_same_grid({bold: bold_img, mask: mask_img})
    sanity.check_repetition_time(t_r, sanity.header_repetition_time(bold_img), bold)
    sanity.check_finite(np.asanyarray(bold_img.dataobj), bold)
    sanity.check_series(np.asanyarray(bold_img.dataobj), np.asanyarray(mask_img.dataobj), bold)
    events_table = check_events(Path(events), list(conditions))
    for condition in conditions:
        # Before the fit: nilearn drops events without an onset quietly.
        sanity.check_events_in_scan(events_table, n_volumes, t_r, events, condition=condition)
    events_table = events_table[events_table["trial_type"].astype(str).isin(conditions)]
    run_confounds = read_confounds(confounds or None, list(confound_columns), n_volumes,
                                   dummy_scans=dummy_scans, bold=bold)
    reference = slice_time_reference(sidecar, t_r)
    model = FirstLevelModel(
        t_r=t_r, slice_time_ref=reference, hrf_model=hrf_model, drift_model="cosine",
        high_pass=high_pass, noise_model=noise_model, signal_scaling=False,
        smoothing_fwhm=smoothing_fwhm or None, mask_img=mask, minimize_memory=True,
    )
    with warnings.catch_warnings():
        # nilearn warns that it uses the given mask instead of computing one: that is intended.
        warnings.filterwarnings("ignore", message=".*Generation of a mask has been requested")
        model.fit(bold_img, events=events_table[["onset", "duration", "trial_type"]],
                  confounds=run_confounds.regressors,
                  sample_masks=run_confounds.sample_mask)
    design = model.design_matrices_[0]
    for condition in conditions:
        sanity.check_task_regressor(design, condition, events, others=[
            c for c in design.columns if c not in conditions])
    fit = FittedContrast(model, contrast, nib.load(mask),
                         dof=float(len(design) - np.linalg.matrix_rank(design.to_numpy())))
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
    conditions = list(conditions or _NAME.findall(contrast))
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
    paths = {name: str(write_nifti(out / f"{name}.nii.gz", session.map(name)))
             for name in names}
    paths["design"] = designs[0]
    paths["mask"] = str(write_nifti(out / "mask.nii.gz", session_mask))
    paths["info"] = str(write_json(out / "glm.json", {
        "n_runs": n, "contrast": contrast, "conditions": conditions,
        "confounds": list(confound_columns), "runs": infos}))
    return paths
