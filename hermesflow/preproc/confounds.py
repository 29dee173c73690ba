"""fMRIPrep's confounds table: the motion columns and framewise displacement, as fMRIPrep names them.

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


def confounds_table(motion: np.ndarray, global_signal: np.ndarray) -> pd.DataFrame:
    """A confounds table with fMRIPrep's column names (the subset hermesflow writes)."""
    frame = pd.DataFrame(motion, columns=list(MOTION_COLUMNS))
    for column in MOTION_COLUMNS:
        frame[f"{column}_derivative1"] = frame[column].diff()
        frame[f"{column}_power2"] = frame[column] ** 2
    frame.insert(0, "global_signal", global_signal)
    frame["framewise_displacement"] = framewise_displacement(motion)
    return frame
