"""A run's confound regressors and its sample mask (the volumes the GLM keeps).

Read as nilearn's fMRIPrep loader reads them (:func:`nilearn.interfaces.fmriprep.load_confounds`):
volumes flagged in fMRIPrep's ``non_steady_state_outlier*`` columns are dropped through a
sample mask (or the first ``dummy_scans`` volumes, when the user says how many); the first row
of derivative columns, which fMRIPrep leaves empty, takes the second row's value; regressors
are demeaned over the kept volumes.  Where the chosen columns are nilearn's ``motion="basic"``
set (plus framewise displacement, which nilearn only uses for scrubbing), nilearn's own loader
reads them; any other choice is read here, the same way.

An ``n/a`` is accepted only where fMRIPrep writes one, the first row of a derivative,
framewise displacement or DVARS column; anywhere else it is a broken table, not a zero.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hermesflow.errors import InputError

NON_STEADY = "non_steady_state_outlier"
MOTION_BASIC = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
FD = "framewise_displacement"
# Columns whose first value fMRIPrep cannot compute (no previous volume).
_FIRST_ROW_EMPTY = re.compile(r"(_derivative1(_power2)?$|^framewise_displacement$|dvars$)")


@dataclass(frozen=True)
class RunConfounds:
    """What the GLM needs from a run's confounds table.

    Attributes
    ----------
    regressors : DataFrame or None
        One row per volume (all of them: nilearn applies the sample mask), demeaned over the
        kept volumes; None for a confounds-free model.
    sample_mask : ndarray or None
        Indices of the kept volumes; None when every volume is kept.
    n_dummy : int
        Volumes dropped as non-steady-state.
    """

    regressors: pd.DataFrame | None
    sample_mask: np.ndarray | None
    n_dummy: int


def read_confounds(path: str | Path | None, columns: list[str], n_volumes: int, *,
                   dummy_scans: int = -1, bold: str | Path | None = None) -> RunConfounds:
    """The chosen ``columns`` of an fMRIPrep confounds table, and the run's sample mask.

    Parameters
    ----------
    path
        ``..._desc-confounds_timeseries.tsv``; may be None when ``columns`` is empty and
        ``dummy_scans`` is given (or there are no non-steady-state volumes to find).
    columns
        fMRIPrep column names; empty for a confounds-free model.
    n_volumes
        Volumes of the BOLD run (the table must have as many rows).
    dummy_scans
        Volumes to drop at the start; -1: those fMRIPrep flagged ``non_steady_state_outlier``.
    bold
        The preprocessed BOLD, for nilearn's loader (which finds the table from its name).

    Raises
    ------
    InputError
        Missing file or column, wrong length, ``n/a`` where fMRIPrep writes none.
    """
    table = _read_table(path, columns, n_volumes)
    if table is None:
        mask = None if dummy_scans <= 0 else np.arange(dummy_scans, n_volumes)
        return RunConfounds(None, mask, max(dummy_scans, 0))
    _check_missing_values(table, columns, path)
    if dummy_scans >= 0:
        kept = np.arange(dummy_scans, n_volumes)
    else:
        flags = table[[c for c in table.columns if c.startswith(NON_STEADY)]]
        kept = np.flatnonzero(~(flags.fillna(0).to_numpy() > 0).any(axis=1))
    if len(kept) < 3:
        raise InputError(path, f"leaves {len(kept)} of {n_volumes} volumes after the "
                         "non-steady-state volumes", "check --dummy-scans and the "
                         "non_steady_state_outlier columns")
    sample_mask = None if len(kept) == n_volumes else kept
    n_dummy = n_volumes - len(kept)
    if not columns:
        return RunConfounds(None, sample_mask, n_dummy)
    if _nilearn_reads(columns, path, bold, dummy_scans):
        regressors = _nilearn_motion(bold, columns, table, sample_mask)
    else:
        regressors = _prepare(table[columns].astype(float), sample_mask)
    return RunConfounds(regressors, sample_mask, n_dummy)


def _read_table(path, columns: list[str], n_volumes: int) -> pd.DataFrame | None:
    if path is None or str(path) == "":
        if columns:
            raise InputError(None, f"no confounds table for the confounds {', '.join(columns)}",
                             "give fMRIPrep's desc-confounds_timeseries.tsv or set "
                             "[workflow] confounds = []")
        return None
    path = Path(path)
    table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks confound column(s) {', '.join(missing)}",
                         "rerun fMRIPrep or change [workflow] confounds in the config")
    if len(table) != n_volumes:
        raise InputError(path, f"has {len(table)} rows for {n_volumes} BOLD volumes",
                         "use the confounds file of this BOLD run")
    return table


def _check_missing_values(table: pd.DataFrame, columns: list[str], path) -> None:
    for column in columns:
        empty = np.flatnonzero(table[column].isna().to_numpy())
        allowed = _FIRST_ROW_EMPTY.search(column) and list(empty) in ([], [0])
        if len(empty) and not allowed:
            rows = ", ".join(str(i + 1) for i in empty[:5]) + (", ..." if len(empty) > 5 else "")
            raise InputError(path, f"column '{column}' is n/a in data row(s) {rows} (fMRIPrep "
                             "leaves only the first row of derivatives and framewise "
                             "displacement empty)", "rerun fMRIPrep for this run or leave the "
                             "column out of [workflow] confounds")


def _prepare(chosen: pd.DataFrame, sample_mask: np.ndarray | None) -> pd.DataFrame:
    """nilearn's ``prepare_output``: first-row gaps from the second row, demeaned on kept rows."""
    chosen = chosen.copy()
    first_empty = chosen.iloc[0].isna()
    chosen.iloc[0, first_empty.to_numpy()] = chosen.iloc[1][first_empty].to_numpy()
    kept = chosen if sample_mask is None else chosen.iloc[sample_mask]
    return chosen - kept.mean()


def _nilearn_reads(columns: list[str], path, bold, dummy_scans: int) -> bool:
    """nilearn's loader gives exactly these columns and finds this very table."""
    if bold is None or dummy_scans >= 0 or set(columns) - {FD} != set(MOTION_BASIC):
        return False
    name = Path(bold).name
    if "_desc-preproc_bold" not in name or Path(path).parent != Path(bold).parent:
        return False
    # nilearn derives the table's name from the BOLD's entities, without space and res.
    stem = re.sub(r"_(space|res|den|cohort)-[^_]+", "", name.split("_desc-preproc_bold")[0])
    return Path(path).name == f"{stem}_desc-confounds_timeseries.tsv"


def _nilearn_motion(bold, columns: list[str], table: pd.DataFrame,
                    sample_mask: np.ndarray | None) -> pd.DataFrame:
    from nilearn.interfaces.fmriprep import load_confounds

    with warnings.catch_warnings():
        # nilearn warns when a confounds JSON is absent; the columns are all it reads here.
        warnings.simplefilter("ignore")
        motion, nilearn_mask = load_confounds(str(bold), strategy=("motion",), motion="basic",
                                              demean=True)
    if not np.array_equal(_as_index(nilearn_mask, len(table)), _as_index(sample_mask,
                                                                         len(table))):
        raise InputError(bold, "nilearn and hermesflow disagree on the non-steady-state "
                         "volumes", "report this with the confounds table")
    regressors = motion[list(MOTION_BASIC)].copy()
    if FD in columns:
        regressors[FD] = _prepare(table[[FD]].astype(float), sample_mask)[FD].to_numpy()
    return regressors[columns]


def _as_index(mask: np.ndarray | None, n: int) -> np.ndarray:
    return np.arange(n) if mask is None else np.asarray(mask)
