"""First-level GLM of the passive-wrist task: nilearn's FirstLevelModel, one session at a time.

The model: the ``move`` blocks of ``events.tsv`` convolved with an HRF (Glover by default),
a cosine drift basis (high-pass 0.01 Hz), the configured confounds (6 motion parameters and
framewise displacement by default), AR(1) noise.  The data are *not* scaled, so the effect map
is in scanner units; the percent-signal-change map divides it by the voxel's baseline, the
fitted ``constant`` of the design (the signal at rest, unbiased by the task blocks).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm.first_level import FirstLevelModel

from hermesflow.bids.layout import check_events
from hermesflow.derivatives.writing import write_nifti
from hermesflow.errors import InputError, RegistryError
from hermesflow.glm.maps import STAT_MAPS, FittedContrast


def load_confounds(path: str | Path, columns: list[str], n_volumes: int) -> pd.DataFrame:
    """The chosen columns of an fMRIPrep confounds table, demeaned, first-frame gaps as 0.

    fMRIPrep leaves the first value of derivatives and of framewise displacement empty
    (``n/a``); there is no displacement before the first volume, so 0 is the right value.
    """
    path = Path(path)
    table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks confound column(s) {', '.join(missing)}",
                         "rerun fMRIPrep or change [workflow] confounds in the config")
    if len(table) != n_volumes:
        raise InputError(path, f"has {len(table)} rows for {n_volumes} BOLD volumes",
                         "use the confounds file of this BOLD run")
    chosen = table[columns].astype(float).fillna(0.0)
    return chosen - chosen.mean()


def fit_session_glm(
    bold: str,
    mask: str,
    confounds: str,
    events: str,
    t_r: float,
    out_dir: str | Path,
    *,
    confound_columns: list[str],
    hrf_model: str = "glover",
    high_pass: float = 0.01,
    noise_model: str = "ar1",
    smoothing_fwhm: float | None = None,
    contrast: str = "move",
    maps: Iterable[str] | None = None,
) -> dict[str, str]:
    """Fit the session GLM and write its maps into ``out_dir``.

    Parameters
    ----------
    maps : iterable of str, optional
        Names of the maps to compute (:data:`hermesflow.glm.maps.STAT_MAPS`); every
        registered map by default.

    Returns
    -------
    dict
        Path of each map by name (``effect``, ``variance``, ``t``, ``z``, ``psc``, ``baseline``
        and any other registered map), and ``design`` (the design matrix TSV).
    """
    out = Path(out_dir)
    names = list(STAT_MAPS if maps is None else maps)
    unknown = [n for n in names if n not in STAT_MAPS]
    if unknown:
        raise RegistryError(f"unknown stat map(s) {', '.join(unknown)}; "
                         f"registered: {', '.join(STAT_MAPS)}")
    try:
        # Read once, in float32: a truncated file fails here, with its name, not deep in nilearn.
        source = nib.load(bold)
        bold_img = nib.Nifti1Image(source.get_fdata(dtype=np.float32), source.affine,
                                   source.header)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError) as err:
        raise InputError(bold, f"cannot be read as NIfTI ({type(err).__name__}: {err})",
                         "rerun the preprocessing of this session") from None
    if bold_img.ndim != 4 or bold_img.shape[-1] < 10:
        raise InputError(bold, f"is not a BOLD series (shape {bold_img.shape})",
                         "point to the preprocessed 4D BOLD run")
    n_volumes = bold_img.shape[-1]
    events_table = check_events(Path(events), contrast)
    regressors = load_confounds(confounds, confound_columns, n_volumes)
    model = FirstLevelModel(
        t_r=t_r,
        hrf_model=hrf_model,
        drift_model="cosine",
        high_pass=high_pass,
        noise_model=noise_model,
        signal_scaling=False,
        smoothing_fwhm=smoothing_fwhm or None,
        mask_img=mask,
        minimize_memory=True,
    )
    with warnings.catch_warnings():
        # nilearn warns that it uses the given mask instead of computing one: that is intended.
        warnings.filterwarnings("ignore", message=".*Generation of a mask has been requested")
        model.fit(bold_img, events=events_table[["onset", "duration", "trial_type"]],
                  confounds=regressors)
    fit = FittedContrast(model, contrast, nib.load(mask))
    paths = {name: str(write_nifti(out / f"{name}.nii.gz", fit.map(name))) for name in names}
    paths["design"] = str(out / "design.tsv")
    model.design_matrices_[0].to_csv(paths["design"], sep="\t", index_label="frame_time")
    return paths
