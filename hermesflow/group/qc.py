"""Sessions' motion QC at the group level: one row per session, and exclusion from the models.

The participant level writes each session's verdict into its ROI table (``qc_status``,
``qc_reason`` and the FD numbers on every row).  Here they become one table of the sessions
with imaging, and, when the config says so (``[qc] exclude = true``), the failed sessions'
ROI measures are left out of the models.  Clinical scores of those sessions stay: the scan's
motion says nothing about the patient's Fugl-Meyer score.
"""

from __future__ import annotations

import pandas as pd

QC_COLUMNS = ["qc_status", "qc_reason", "qc_mean_fd", "qc_max_fd", "qc_fraction_above"]
KEYS = ["participant_id", "session_id"]


def session_qc(roi_tables: list[str]) -> pd.DataFrame:
    """One row per session with imaging: its QC columns (``n/a`` status without a verdict)."""
    rows = []
    for path in roi_tables:
        table = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str},
                            keep_default_na=False, na_values=["n/a"])
        row = table.iloc[0]
        record = {key: row[key] for key in KEYS}
        for column in QC_COLUMNS:
            record[column] = row[column] if column in table.columns else None
        rows.append(record)
    frame = pd.DataFrame(rows, columns=[*KEYS, *QC_COLUMNS])
    frame["qc_status"] = frame["qc_status"].fillna("n/a")
    frame["qc_reason"] = frame["qc_reason"].fillna("")
    return frame.sort_values(KEYS, kind="stable").reset_index(drop=True)


def exclude_failed_sessions(long: pd.DataFrame, qc: pd.DataFrame, clinical_scores: list[str],
                            exclude: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop failed sessions' imaging outcomes from the long table if ``exclude``.

    Returns
    -------
    long
        The long table the models see.
    qc
        ``qc`` with an ``excluded`` column (``yes`` / ``no``) recording what was dropped.
    """
    failed = qc["qc_status"] == "fail"
    qc = qc.assign(excluded=["yes" if exclude and f else "no" for f in failed])
    if not exclude or not failed.any():
        return long, qc
    dropped = set(qc.loc[failed, KEYS].itertuples(index=False, name=None))
    pairs = zip(long["participant_id"], long["session_id"], strict=True)
    in_failed = pd.Series([pair in dropped for pair in pairs], index=long.index)
    imaging = ~long["outcome"].isin(clinical_scores)
    return long[~(in_failed & imaging)].reset_index(drop=True), qc
