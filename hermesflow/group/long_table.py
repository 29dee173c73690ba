"""The group stage: one long table of every session's measures, then the trial's models.

The long table has one row per participant x session x outcome.  ROI outcomes are named
``<roi>_<hemi>_<measure>`` (``mi4p_ipsi_psc``) and, for bilateral measures, ``<roi>_<measure>``
(``mi4p_li``); clinical outcomes keep their column name in ``sessions.tsv`` (``fm_motor``).
Participant columns (arm, treated, age, sex, lesion side) and ``months`` are joined to every row.

Which ROI measures are modelled and reported is not known here: each ROI table's JSON sidecar
carries the roles of its measures (``"Measures": {name: {"Per", "Model", "Report"}}``, written
from the ROI measure registry), read by :func:`read_measure_roles`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from hermesflow.bids.layout import read_participants, read_sessions
from hermesflow.config import GroupConfig
from hermesflow.errors import InputError

# Clinical scores drawn as trajectories in the group report (all of them are in its table).
REPORT_CLINICAL_SCORES = ("nihss_motor", "fm_motor")
HEMISPHERES = ("ipsi", "contra")
LONG_COLUMNS = ["participant_id", "session_id", "months", "arm", "treated", "block", "stratum",
                "age", "sex", "lesion_side", "outcome", "value"]


def roi_outcome(roi: str, hemi: str, measure: str) -> str:
    """The outcome name of an ROI measure: ``mi4p_ipsi_psc``, or ``mi4p_li`` if bilateral."""
    return f"{roi}_{measure}" if hemi == "bilateral" else f"{roi}_{hemi}_{measure}"


def roi_long_rows(roi_tables: list[str]) -> pd.DataFrame:
    """Session ROI tables as ``participant_id, session_id, outcome, value`` rows."""
    frames = [pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})
              for path in roi_tables]
    roi = pd.concat(frames, ignore_index=True)
    keys = roi[["roi", "hemi", "measure"]].astype(str).itertuples(index=False, name=None)
    roi["outcome"] = [roi_outcome(*key) for key in keys]
    return roi[["participant_id", "session_id", "outcome", "value"]]


def read_sidecar_roles(sidecar: str | Path) -> dict[str, dict[str, Any]]:
    """The measures' roles (``"Measures"``) in the JSON sidecar of an ROI or long table."""
    try:
        return dict(json.loads(Path(sidecar).read_text())["Measures"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(sidecar, "missing or without 'Measures' (the roles of the ROI "
                         "measures)", "rerun the participant level, which writes it next to "
                         "each ROI table") from None


def read_measure_roles(roi_tables: list[str]) -> dict[str, dict[str, Any]]:
    """The roles of the ROI measures, from the JSON sidecars of the ROI tables.

    Returns
    -------
    dict
        ``measure -> {"Description", "Per", "Model", "Report"}`` over all tables.
    """
    roles: dict[str, dict[str, Any]] = {}
    for table in roi_tables:
        roles.update(read_sidecar_roles(Path(table).with_suffix(".json")))
    return roles


def _roi_measure(outcome: str, roles: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """``(hemi, measure)`` of an ROI outcome; None for anything else (clinical scores)."""
    # Longest names first, so that 'peak_li' is not read as 'li'.
    names = sorted(roles, key=len, reverse=True)
    for name in (n for n in names if roles[n]["Per"] == "hemisphere"):
        for hemi in HEMISPHERES:
            suffix = f"_{hemi}_{name}"
            if outcome.endswith(suffix) and len(outcome) > len(suffix):
                return hemi, name
    for name in (n for n in names if roles[n]["Per"] == "bilateral"):
        if outcome.endswith(f"_{name}") and len(outcome) > len(name) + 1:
            return "bilateral", name
    return None


def build_long_table(roi_tables: list[str], bids_dir: str | Path,
                     clinical_scores: list[str], *, extra_columns: list[str] | None = None,
                     participant_ids: list[str] | None = None) -> pd.DataFrame:
    """Join ROI measures with clinical scores, session times and participant columns.

    Clinical scores come from every row of every randomised participant's ``sessions.tsv``
    (intention to treat), whether or not the session's imaging succeeded; ``extra_columns``
    of ``participants.tsv`` (strata, covariates) are carried along.
    """
    roi = roi_long_rows(roi_tables)
    participants = read_participants(bids_dir)
    if participant_ids:
        wanted = {f"sub-{p.removeprefix('sub-')}" for p in participant_ids}
        participants = participants[participants["participant_id"].isin(wanted)]
        roi = roi[roi["participant_id"].isin(wanted)]
    subjects = sorted(set(participants["participant_id"]))
    sessions = pd.concat([read_sessions(bids_dir, s.removeprefix("sub-")) for s in subjects],
                         ignore_index=True)
    scores = [c for c in clinical_scores if c in sessions.columns]
    clinical = sessions.melt(id_vars=["participant_id", "session_id"], value_vars=scores,
                             var_name="outcome", value_name="value")
    # Clinical scores count for the sessions that were scanned, and for those that were not.
    long = pd.concat([roi, clinical], ignore_index=True)
    long = long.merge(sessions[["participant_id", "session_id", "months"]],
                      on=["participant_id", "session_id"], how="left")
    wanted_columns = LONG_COLUMNS[:-2] + [c for c in extra_columns or [] if c not in LONG_COLUMNS]
    keep = [c for c in wanted_columns if c in participants.columns or c == "participant_id"]
    long = long.merge(participants[keep], on="participant_id", how="left")
    columns = [c for c in [*wanted_columns, "outcome", "value"] if c in long.columns]
    return long[columns].sort_values(["outcome", "participant_id", "months"],
                                     kind="stable").reset_index(drop=True)


def default_outcomes(long_table: pd.DataFrame, spec: GroupConfig,
                     roles: dict[str, dict[str, Any]]) -> list[str]:
    """The configured outcomes, else every ROI measure with ``Model`` and the clinical scores.

    Parameters
    ----------
    roles
        The measures' roles (:func:`read_measure_roles`, or the ROI registry's
        ``measure_roles()``).
    """
    if spec.outcomes:
        return list(spec.outcomes)
    present = list(dict.fromkeys(long_table["outcome"]))
    rois = []
    for outcome in present:
        parsed = None if outcome in spec.clinical_scores else _roi_measure(outcome, roles)
        if parsed is not None and roles[parsed[1]]["Model"]:
            rois.append(outcome)
    return rois + [c for c in spec.clinical_scores if c in present]


class ReportOutcomes(NamedTuple):
    """What the group report shows: arm x time rows (``table``) and trajectories."""

    table: list[str]
    figures: list[str]


def report_outcomes(long_table: pd.DataFrame, roles: dict[str, dict[str, Any]],
                    clinical_scores: list[str] | None = None) -> ReportOutcomes:
    """The outcomes of the group report, from the measures' ``Report`` flags.

    The table holds every reported ROI outcome and every clinical score; the trajectories
    show the reported per-hemisphere measures of each ROI's ipsilesional side (where the
    treatment is expected to act) and :data:`REPORT_CLINICAL_SCORES`.  Clinical scores are
    ``clinical_scores`` if given, else every outcome that is not an ROI measure.
    """
    table, figures, clinical = [], [], []
    for outcome in dict.fromkeys(long_table["outcome"]):
        known_clinical = clinical_scores is not None and outcome in clinical_scores
        parsed = None if known_clinical else _roi_measure(outcome, roles)
        if parsed is None:
            if clinical_scores is None or known_clinical:
                clinical.append(outcome)
        elif roles[parsed[1]]["Report"]:
            table.append(outcome)
            if parsed[0] == "ipsi":
                figures.append(outcome)
    figures += [c for c in REPORT_CLINICAL_SCORES if c in clinical]
    return ReportOutcomes(table + clinical, figures)
