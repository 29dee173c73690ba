"""fMRIPrep's confounds table: motion, framewise displacement, tissue signals, aCompCor and
non-steady-state outliers, as fMRIPrep names them.

Shared by the simulator (which writes what fMRIPrep would) and the native preprocessing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
# Power et al. (2012): rotations become arc length on a 50 mm sphere.
HEAD_RADIUS_MM = 50.0


def framewise_displacement(motion: np.ndarray) -> np.ndarray:
    """Power's framewise displacement (mm) of ``(n, 6)`` motion; the first volume has none."""
    diff = np.abs(np.diff(motion, axis=0))
    fd = diff[:, :3].sum(axis=1) + HEAD_RADIUS_MM * diff[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def confounds_table(motion: np.ndarray, global_signal: np.ndarray,
                    tissue: dict[str, np.ndarray] | None = None,
                    extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """A confounds table with fMRIPrep's column names (the subset hermesflow writes).

    ``tissue`` (``csf``, ``white_matter``) follow ``global_signal``, as in fMRIPrep;
    ``extra`` columns (``a_comp_cor_*``, ``non_steady_state_outlier*``) come last.
    """
    frame = pd.DataFrame(motion, columns=list(MOTION_COLUMNS))
    for column in MOTION_COLUMNS:
        frame[f"{column}_derivative1"] = frame[column].diff()
        frame[f"{column}_power2"] = frame[column] ** 2
    for position, (name, signal) in enumerate((tissue or {}).items()):
        frame.insert(position, name, signal)
    frame.insert(0, "global_signal", global_signal)
    frame["framewise_displacement"] = framewise_displacement(motion)
    if extra is not None:
        frame = pd.concat([frame, extra.reset_index(drop=True)], axis=1)
    return frame


def cosine_basis(n_volumes: int, t_r: float, cutoff_s: float = 128.0) -> np.ndarray:
    """The DCT drift regressors below ``1 / cutoff_s`` Hz (fMRIPrep's ``cosine_XX``), no
    constant."""
    order = int(np.floor(2 * n_volumes * t_r / cutoff_s))
    time = np.arange(n_volumes)
    return np.column_stack([np.sqrt(2.0 / n_volumes)
                            * np.cos(np.pi * (time + 0.5) * k / n_volumes)
                            for k in range(1, order + 1)]) if order else np.empty((n_volumes, 0))


def a_comp_cor(signals: np.ndarray, t_r: float, variance: float = 0.5) -> pd.DataFrame:
    """fMRIPrep's aCompCor: principal components of the noise-mask voxels' time series.

    As nipype's ``compute_noise_components`` (which fMRIPrep calls): each voxel's series is
    high-passed with the 128 s cosine basis, demeaned and scaled to unit variance; the left
    singular vectors are kept until they explain ``variance`` of the total (fMRIPrep: 50 %).

    Parameters
    ----------
    signals : ndarray, shape (n_volumes, n_voxels)
        The eroded WM+CSF mask's voxels.
    """
    n_volumes = signals.shape[0]
    design = np.column_stack([np.ones(n_volumes), cosine_basis(n_volumes, t_r)])
    residual = signals - design @ np.linalg.lstsq(design, signals, rcond=None)[0]
    scale = residual.std(axis=0)
    residual = residual[:, scale > 0] / scale[scale > 0]
    if residual.shape[1] == 0:
        return pd.DataFrame(index=range(n_volumes))
    left, singular, _ = np.linalg.svd(residual, full_matrices=False)
    explained = np.cumsum(singular**2) / np.sum(singular**2)
    keep = int(np.searchsorted(explained, variance) + 1)
    return pd.DataFrame(left[:, :keep],
                        columns=[f"a_comp_cor_{index:02d}" for index in range(keep)])


def non_steady_state_outliers(global_signal: np.ndarray, threshold: float = 3.5) -> pd.DataFrame:
    """One indicator column per leading volume whose signal is an outlier (not yet at steady
    state), named as fMRIPrep names them; as nipype's ``NonSteadyStateDetector``: modified
    z-scores of the first 50 volumes' global signal, counted from the start until one is below
    ``threshold``."""
    head = np.asarray(global_signal[:50], float)
    deviation = np.abs(head - np.median(head))
    mad = np.median(deviation)
    score = 0.6745 * deviation / mad if mad > 0 else np.zeros_like(head)
    count = int(np.argmin(score > threshold)) if (score <= threshold).any() else len(head)
    columns = {}
    for index in range(count):
        indicator = np.zeros(len(global_signal))
        indicator[index] = 1.0
        columns[f"non_steady_state_outlier{index:02d}"] = indicator
    return pd.DataFrame(columns, index=range(len(global_signal)))
