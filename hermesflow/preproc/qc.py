"""Motion quality control of one session from its fMRIPrep confounds table.

The verdict reads ``framewise_displacement`` (Power et al. 2012) after the dummy scans
(fMRIPrep's ``non_steady_state_outlier_XX`` columns): the session fails when its mean FD or the
share of volumes above the FD threshold exceeds the configured limits.  The ROI table carries
the verdict (``qc_status``, ``qc_reason``) and the group stage can leave failed sessions out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hermesflow.errors import InputError

FD_COLUMN = "framewise_displacement"
DUMMY_PREFIX = "non_steady_state_outlier"


@dataclass(frozen=True)
class MotionQC:
    """The motion summary and verdict of one session (FD in mm; fraction of volumes)."""

    mean_fd: float
    max_fd: float
    fraction_above: float
    n_volumes: int
    n_dummy: int
    fd_threshold: float
    max_mean_fd: float
    max_fraction_above: float
    status: str
    reason: str

    def summary(self) -> str:
        """One line: the numbers and the limits they are judged against."""
        return (f"mean FD {self.mean_fd:.2f} mm (limit {self.max_mean_fd:g}), max FD "
                f"{self.max_fd:.2f} mm, {100 * self.fraction_above:.1f}% of volumes above "
                f"{self.fd_threshold:g} mm (limit {100 * self.max_fraction_above:g}%)")

    def to_dict(self) -> dict:
        return asdict(self)


def dummy_volumes(confounds: pd.DataFrame) -> np.ndarray:
    """Boolean per volume: a non-steady-state volume (fMRIPrep marks each with a column)."""
    columns = [c for c in confounds.columns if c.startswith(DUMMY_PREFIX)]
    if not columns:
        return np.zeros(len(confounds), bool)
    return (confounds[columns].fillna(0).to_numpy() > 0).any(axis=1)


def motion_qc(confounds_path: str | Path, *, fd_threshold: float, max_mean_fd: float,
              max_fraction_above: float) -> MotionQC:
    """Summarise framewise displacement and judge it against the limits.

    Parameters
    ----------
    confounds_path
        fMRIPrep's ``desc-confounds_timeseries.tsv``.
    fd_threshold
        FD (mm) above which a volume counts as moved.
    max_mean_fd
        Largest acceptable mean FD (mm).
    max_fraction_above
        Largest acceptable fraction (0-1) of volumes above ``fd_threshold``.

    Returns
    -------
    MotionQC
        ``status`` is ``"pass"`` or ``"fail"``; ``reason`` names each limit exceeded.
    """
    confounds = pd.read_csv(confounds_path, sep="\t", na_values=["n/a"])
    if FD_COLUMN not in confounds.columns:
        raise InputError(confounds_path, f"no '{FD_COLUMN}' column",
                         "use fMRIPrep's confounds table (or --preproc native, which writes it)")
    dummy = dummy_volumes(confounds)
    # The first volume has no FD (NaN); dummy scans are discarded before the model anyway.
    fd = confounds.loc[~dummy, FD_COLUMN].to_numpy(dtype=float)
    fd = fd[np.isfinite(fd)]
    if fd.size == 0:
        raise InputError(confounds_path, "framewise displacement has no values",
                         "check the confounds table")
    mean_fd, max_fd = float(fd.mean()), float(fd.max())
    fraction = float((fd > fd_threshold).mean())
    reasons = []
    if mean_fd > max_mean_fd:
        reasons.append(f"mean FD {mean_fd:.2f} mm > {max_mean_fd:g} mm")
    if fraction > max_fraction_above:
        reasons.append(f"{100 * fraction:.1f}% of volumes with FD > {fd_threshold:g} mm "
                       f"(limit {100 * max_fraction_above:g}%)")
    return MotionQC(mean_fd=mean_fd, max_fd=max_fd, fraction_above=fraction,
                    n_volumes=int(len(confounds)), n_dummy=int(dummy.sum()),
                    fd_threshold=fd_threshold, max_mean_fd=max_mean_fd,
                    max_fraction_above=max_fraction_above,
                    status="fail" if reasons else "pass", reason="; ".join(reasons))
