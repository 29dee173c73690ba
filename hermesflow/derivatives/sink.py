"""Copy one session's outputs into the derivatives with their BIDS names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hermesflow.derivatives.naming import STATS, SessionNames
from hermesflow.derivatives.writing import copy_file, write_tsv


def sink_session(output_dir: str, subject: str, session: str, task: str, space: str,
                 atlas: str, maps: dict[str, str], roi_table: str,
                 report: str | None = None) -> dict[str, str]:
    """Copy one session's maps, ROI table and report into the derivatives, with BIDS names."""
    names = SessionNames(Path(output_dir), subject, session, task, space)
    written = {}
    for stat in STATS:
        written[stat] = str(copy_file(maps[stat], names.statmap(stat)))
    table = pd.read_csv(roi_table, sep="\t")
    table.insert(0, "session_id", f"ses-{session}")
    table.insert(0, "participant_id", f"sub-{subject}")
    written["roi_table"] = str(write_tsv(names.roi_table(atlas), table))
    if report:
        written["report"] = str(copy_file(report, names.report(atlas)))
    return written
