"""Data sanity before any model: degenerate data must be refused, never turned into activation.

Each check is a pure function over arrays, tables and headers; it returns nothing when the
data are usable and raises a one-line :class:`~hermesflow.errors.InputError` (the file, what
is wrong, how to fix it) otherwise.  A flat-line BOLD, events after the scan's end or a task
regressor the confounds already explain all fit without complaint in nilearn and give
confident-looking maps, so these checks run before the first-level model is fitted.

Grids are compared, never reconciled: resampling a lesion or a mask behind the user's back
hides the mistake that put it on another grid (a lesion silently dropped means lesioned voxels
counted as cortex).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.errors import InputError
from hermesflow.glm.bold import read_masked_bold

PathLike = str | Path

# A few constant voxels at the mask's edge are harmless (outside the field of view after
# resampling); beyond this share the series carry no signal and every contrast is spurious.
MAX_CONSTANT_FRACTION = 0.05
# R^2 of the task regressor on the other columns above which its effect is not estimable.
MAX_COLLINEARITY_R2 = 0.95
# Sidecar and header may round the TR differently (e.g. 2.0 vs 1.99999); anything larger is a
# wrong sidecar or a resampled series.
TR_TOLERANCE = 0.01


def read_checked_series(bold_img: nib.Nifti1Image, path: PathLike, inside: np.ndarray,
                        smoothing_fwhm: float | None = None, *,
                        max_constant_fraction: float = MAX_CONSTANT_FRACTION) -> np.ndarray:
    """The in-mask series the GLM fits, ``(n_volumes, n_voxels)`` float32, read once
    (:func:`~hermesflow.glm.bold.read_masked_bold`) and refused in one line when it holds
    non-finite values anywhere, too few volumes, no voxel, or constant series in more than
    ``max_constant_fraction`` of the mask."""
    if bold_img.ndim != 4:
        _check_length(1, path)
    series, non_finite = read_masked_bold(bold_img, path, inside, smoothing_fwhm)
    if non_finite:
        raise InputError(path, f"{non_finite} non-finite value(s) (NaN or inf) in the BOLD "
                         "series",
                         "rerun the preprocessing of this run, or replace them before the GLM")
    _check_length(series.shape[0], path)
    n_inside = series.shape[1]
    if n_inside == 0:
        raise InputError(path, "the brain mask holds no voxel", "use the brain mask of this run")
    constant = int(np.count_nonzero(np.ptp(series, axis=0) == 0))
    if constant > max_constant_fraction * n_inside:
        raise InputError(path, f"{constant} of {n_inside} voxels inside the brain mask have a "
                         "constant series (no signal)",
                         "check the preprocessing output; an all-zero or flat BOLD cannot be "
                         "modelled")
    return series


def _check_length(n_volumes: int, path: PathLike) -> None:
    if n_volumes < 3:
        raise InputError(path, f"holds {n_volumes} volume(s), too few for a GLM",
                         "use the full 4D BOLD run")


def check_task_regressor(design: pd.DataFrame, regressor: str, path: PathLike, *,
                         others: Sequence[str] | None = None,
                         max_r2: float = MAX_COLLINEARITY_R2) -> None:
    """Refuse a task regressor that is zero or explained by the other columns of the design.

    Parameters
    ----------
    design
        The first-level design matrix, one column per regressor (task, confounds, drift,
        constant), one row per volume.
    regressor
        The task column (e.g. ``move``).
    path
        The events file, named in the message.
    others
        The columns it must not be collinear with; default every other column.
    """
    if regressor not in design.columns:
        raise InputError(path, f"the design has no '{regressor}' regressor",
                         f"label the task blocks '{regressor}' in trial_type")
    task = design[regressor].to_numpy(float)
    if not np.any(np.abs(task) > 1e-10):
        raise InputError(path, f"the '{regressor}' regressor is zero over the scan",
                         "check the onsets and durations against the run's length")
    columns = [c for c in (design.columns if others is None else others) if c != regressor]
    if not columns:
        return
    rest = design[list(columns)].to_numpy(float)
    # With a constant among the columns the R^2 is about the centred regressor; without one
    # it is the uncentred share, the same thing the fit would lose.
    coef, *_ = np.linalg.lstsq(rest, task, rcond=None)
    residual = task - rest @ coef
    total = task - task.mean() if _has_constant(rest) else task
    r2 = 1.0 - float(residual @ residual) / float(total @ total)
    if r2 > max_r2:
        raise InputError(path, f"the '{regressor}' regressor is collinear with the confounds "
                         f"(R^2 = {r2:.3f})",
                         "check the events' timing and the confound columns chosen")


def _has_constant(columns: np.ndarray) -> bool:
    return bool(np.any(np.ptp(columns, axis=0) == 0))


def header_repetition_time(img: nib.Nifti1Image) -> float | None:
    """The TR stored in a 4D NIfTI header, in seconds; None when the header leaves it unset."""
    if img.ndim != 4:
        return None
    zoom = float(img.header.get_zooms()[3])
    unit = img.header.get_xyzt_units()[1]
    # 1 with no time unit is what a writer leaves when it never set the TR (nibabel's default).
    if zoom <= 0 or (unit == "unknown" and zoom == 1.0):
        return None
    return {"msec": zoom / 1000.0, "usec": zoom / 1e6}.get(unit, zoom)


def check_repetition_time(sidecar_t_r: float, header_t_r: float | None, path: PathLike, *,
                          tolerance: float = TR_TOLERANCE) -> None:
    """Refuse a sidecar RepetitionTime that disagrees with the NIfTI header."""
    if header_t_r is None:
        return
    if abs(float(sidecar_t_r) - header_t_r) > tolerance * max(header_t_r, 1e-6):
        raise InputError(path, f"RepetitionTime {sidecar_t_r:g} s in the sidecar but "
                         f"{header_t_r:g} s in the NIfTI header",
                         "correct the sidecar (or the header) so both give the true TR")


def check_events_in_scan(events: pd.DataFrame, n_volumes: int, t_r: float, path: PathLike,
                         condition: str = "move") -> None:
    """Refuse ``condition`` events with no onset, or lying wholly outside the scan.

    The scan covers ``[0, n_volumes * t_r)`` seconds; an event starting at or after its end,
    or ending at or before its start, has no data to explain.
    """
    chosen = events[events["trial_type"] == condition]
    onset = pd.to_numeric(chosen["onset"], errors="coerce")
    duration = pd.to_numeric(chosen["duration"], errors="coerce")
    missing = int((onset.isna() | duration.isna()).sum())
    if missing:
        raise InputError(path, f"{missing} '{condition}' event(s) without a numeric onset or "
                         "duration", "write seconds as numbers (n/a is not allowed here)")
    end = n_volumes * t_r
    outside = chosen[(onset >= end) | (onset + duration <= 0)]
    if len(outside):
        first = float(pd.to_numeric(outside["onset"]).iloc[0])
        raise InputError(path, f"{len(outside)} '{condition}' event(s) outside the scan "
                         f"(first at {first:g} s; the scan lasts {end:g} s)",
                         "use the events of this run, in seconds from its first volume")


def check_same_grid(images: Mapping[str, nib.spatialimages.SpatialImage | None], *,
                    atol: float = 1e-3) -> None:
    """Refuse images whose voxel grids (shape and affine) differ from the first one's.

    Parameters
    ----------
    images
        ``path -> image`` in order, the reference first (the BOLD); None entries are skipped
        (an optional lesion mask).
    """
    present = [(path, img) for path, img in images.items() if img is not None]
    if len(present) < 2:
        return
    ref_path, ref = present[0]
    shape, affine = ref.shape[:3], ref.affine
    for path, img in present[1:]:
        if img.shape[:3] != shape or not np.allclose(img.affine, affine, atol=atol):
            raise InputError(path, f"grid {_grid(img)} differs from {_grid(ref)} of "
                             f"{Path(ref_path).name}",
                             "give every image of the session on the BOLD's grid "
                             "(hermesflow does not resample them)")


def _grid(img) -> str:
    zooms = "x".join(f"{z:g}" for z in img.header.get_zooms()[:3])
    return f"{'x'.join(str(n) for n in img.shape[:3])} at {zooms} mm"


def check_session_data(bold: PathLike, mask: PathLike, lesion: PathLike | None,
                       sidecar_t_r: float, sidecar: PathLike) -> None:
    """The image checks of one run in the order the GLM needs them: grids, TR, values.

    Parameters
    ----------
    bold, mask, lesion
        The preprocessed BOLD, its brain mask and the lesion mask (or None) in one space.
    sidecar_t_r, sidecar
        RepetitionTime from the raw sidecar, and the sidecar (named in the message).
    """
    bold_img, mask_img = nib.load(bold), nib.load(mask)
    lesion_img = nib.load(lesion) if lesion else None
    check_same_grid({str(bold): bold_img, str(mask): mask_img,
                     str(lesion): lesion_img})
    check_repetition_time(sidecar_t_r, header_repetition_time(bold_img), sidecar)
    # Only what the GLM reads: the in-mask series, float32, one volume at a time.
    read_checked_series(bold_img, bold, np.asarray(mask_img.dataobj) > 0)
