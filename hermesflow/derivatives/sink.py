"""Copy one session's outputs into the derivatives with their BIDS names."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hermesflow.derivatives.manifest import complete_session, manifest_path
from hermesflow.derivatives.naming import SessionNames
from hermesflow.derivatives.writing import (
    copy_file,
    folders_synced_once,
    write_json,
    write_tsv,
)


def sink_maps(output_dir: str, subject: str, session: str, task: str, space: str,
               maps: dict[str, str]) -> dict[str, str]:
    """Write a session's statistical maps as soon as the GLM has them, before any ROI step:
    an atlas that cannot be applied (another template, a typo in --rois) or a failing report
    never costs the user the maps."""
    names = SessionNames(Path(output_dir), subject, session, task, space)
    with folders_synced_once():
        return {stat: str(copy_file(path, names.statmap(stat))) for stat, path in maps.items()}


def sink_session(output_dir: str, subject: str, session: str, task: str, space: str,
                 atlas: str, maps: dict[str, str], roi_table: str,
                 report: str | None = None, roi_sidecar: str | None = None,
                 qc: str | None = None, glm_info: dict | None = None) -> dict[str, str]:
    """Copy one session's maps, ROI table (and sidecar) and report into the derivatives.

    Parameters
    ----------
    maps : dict
        ``stat -> path`` of every map to write, as ``..._stat-<stat>_statmap.nii.gz``; the
        caller chooses them (the GLM's registry marks which maps are derivatives).
    qc : str, optional
        The session's motion QC (JSON of :class:`hermesflow.preproc.qc.MotionQC`); its
        verdict is repeated on every row of the ROI table (:data:`QC_COLUMNS`), so that the
        group stage and the index page read it with the measures.
    glm_info : dict, optional
        What went into the session's GLM (``n_runs``, per run the volumes, dummy scans and
        slice-time reference); recorded in the ROI table's sidecar (``NumberOfRuns``, ``GLM``).
    report : str, optional
        The session's page for this atlas, copied after the manifest and not certified in it
        (a page is for reading; the tables are what the group level trusts).

    Returns
    -------
    dict
        Written path of each map (by stat), ``roi_table``, and ``roi_sidecar`` and ``report``
        when given.
    """
    names = SessionNames(Path(output_dir), subject, session, task, space)
    # One flush of the session's folder for all its files, after the manifest.
    with folders_synced_once():
        # Maps the maps sink already wrote are recorded (for the manifest), not copied again.
        written = {stat: str(path) if Path(path) == names.statmap(stat)
                   else str(copy_file(path, names.statmap(stat))) for stat, path in maps.items()}
        table = pd.read_csv(roi_table, sep="\t")
        table.insert(0, "session_id", f"ses-{session}")
        table.insert(0, "participant_id", f"sub-{subject}")
        if qc:
            for column, value in qc_columns(qc).items():
                table[column] = value
        written["roi_table"] = str(write_tsv(names.roi_table(atlas), table))
        if roi_sidecar:
            # BIDS: a TSV's sidecar has its name with .json; the group stage reads the measures'
            # roles from it.
            sidecar_path = names.roi_table(atlas).with_suffix(".json")
            if glm_info:
                content = json.loads(Path(roi_sidecar).read_text())
                content.update(NumberOfRuns=glm_info.get("n_runs"), GLM=glm_info)
                written["roi_sidecar"] = str(write_json(sidecar_path, content))
            else:
                written["roi_sidecar"] = str(copy_file(roi_sidecar, sidecar_path))
        # Last, so that a session is certified only once every output is in place.
        complete_session(manifest_path(names.roi_table(atlas)), written)
        if report:
            written["report"] = str(copy_file(report, names.report(atlas)))
        return written


# The QC verdict's columns in a session's ROI table (read back by the group stage).
QC_COLUMNS = ("qc_status", "qc_reason", "qc_mean_fd", "qc_max_fd", "qc_fraction_above")


def qc_columns(qc_json: str | Path) -> dict[str, object]:
    """The :data:`QC_COLUMNS` values of a session from its QC JSON."""
    verdict = json.loads(Path(qc_json).read_text())
    return {"qc_status": verdict["status"], "qc_reason": verdict["reason"] or "n/a",
            "qc_mean_fd": verdict["mean_fd"], "qc_max_fd": verdict["max_fd"],
            "qc_fraction_above": verdict["fraction_above"]}
