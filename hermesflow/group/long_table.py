"""The group stage: one long table of every session's measures, then the trial's models.

The long table has one row per participant x session x outcome.  ROI outcomes are named
``<roi>_<hemi>_<measure>`` (``mi4p_ipsi_psc``) and ``<roi>_li``; clinical outcomes keep their
column name in ``sessions.tsv`` (``fm_motor``).  Participant columns (arm, treated, age, sex,
lesion side) and ``months`` are joined to every row.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hermesflow.bids.layout import read_participants, read_sessions
from hermesflow.config import GroupConfig

REPORT_OUTCOMES = ["mi4a_ipsi_psc", "mi4p_ipsi_psc", "nihss_motor", "fm_motor"]
DEFAULT_ROI_MEASURES = ("effect", "psc", "peak_t", "n_active", "li")
LONG_COLUMNS = ["participant_id", "session_id", "months", "arm", "treated", "age", "sex",
                "lesion_side", "outcome", "value"]


def roi_long_rows(roi_tables: list[str]) -> pd.DataFrame:
    """Session ROI tables as ``participant_id, session_id, outcome, value`` rows."""
    frames = [pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})
              for path in roi_tables]
    roi = pd.concat(frames, ignore_index=True)
    roi["outcome"] = roi["roi"] + "_" + roi["hemi"] + "_" + roi["measure"]
    roi.loc[roi["measure"] == "li", "outcome"] = roi["roi"] + "_li"
    return roi[["participant_id", "session_id", "outcome", "value"]]


def build_long_table(roi_tables: list[str], bids_dir: str | Path,
                     clinical_scores: list[str]) -> pd.DataFrame:
    """Join ROI measures with clinical scores, session times and participant columns."""
    roi = roi_long_rows(roi_tables)
    participants = read_participants(bids_dir)
    subjects = sorted(set(roi["participant_id"]))
    sessions = pd.concat([read_sessions(bids_dir, s.removeprefix("sub-")) for s in subjects],
                         ignore_index=True)
    scores = [c for c in clinical_scores if c in sessions.columns]
    clinical = sessions.melt(id_vars=["participant_id", "session_id"], value_vars=scores,
                             var_name="outcome", value_name="value")
    # Clinical scores count for the sessions that were scanned, and for those that were not.
    long = pd.concat([roi, clinical], ignore_index=True)
    long = long.merge(sessions[["participant_id", "session_id", "months"]],
                      on=["participant_id", "session_id"], how="left")
    keep = [c for c in LONG_COLUMNS if c in participants.columns or c == "participant_id"]
    long = long.merge(participants[keep], on="participant_id", how="left")
    columns = [c for c in LONG_COLUMNS if c in long.columns]
    return long[columns].sort_values(["outcome", "participant_id", "months"],
                                     kind="stable").reset_index(drop=True)


def default_outcomes(long_table: pd.DataFrame, spec: GroupConfig) -> list[str]:
    """The configured outcomes, else every ROI measure of interest and the clinical scores."""
    if spec.outcomes:
        return list(spec.outcomes)
    present = list(dict.fromkeys(long_table["outcome"]))
    rois = [o for o in present if o not in spec.clinical_scores
            and any(o.endswith(f"_{measure}") for measure in DEFAULT_ROI_MEASURES)]
    return rois + [c for c in spec.clinical_scores if c in present]
