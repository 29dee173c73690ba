"""Copy one session's outputs into the derivatives with their BIDS names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hermesflow.derivatives.naming import SessionNames
from hermesflow.derivatives.writing import copy_file, write_tsv


def sink_session(output_dir: str, subject: str, session: str, task: str, space: str,
                 atlas: str, maps: dict[str, str], roi_table: str,
                 report: str | None = None, roi_sidecar: str | None = None) -> dict[str, str]:
    """Copy one session's maps, ROI table (and sidecar) and report into the derivatives.

    Parameters
    ----------
    maps : dict
        ``stat -> path`` of every map to write, as ``..._stat-<stat>_statmap.nii.gz``; the
        caller chooses them (the GLM's registry marks which maps are derivatives).

    Returns
    -------
    dict
        Written path of each map (by stat), ``roi_table``, and ``roi_sidecar`` and ``report``
        when given.
    """
    names = SessionNames(Path(output_dir), subject, session, task, space)
    written = {stat: str(copy_file(path, names.statmap(stat))) for stat, path in maps.items()}
    table = pd.read_csv(roi_table, sep="\t")
    table.insert(0, "session_id", f"ses-{session}")
    table.insert(0, "participant_id", f"sub-{subject}")
    written["roi_table"] = str(write_tsv(names.roi_table(atlas), table))
    if roi_sidecar:
        # BIDS: a TSV's sidecar has its name with .json; the group stage reads the measures'
        # roles from it.
        written["roi_sidecar"] = str(copy_file(roi_sidecar,
                                               names.roi_table(atlas).with_suffix(".json")))
    if report:
        written["report"] = str(copy_file(report, names.report(atlas)))
    return written
