"""The dataset's index page, ``OUTPUT_DIR/index.html``: every session with its QC in one line.

Like fMRIPrep's per-subject reports, one entry per participant, one line per session: a link
to the session's report and its motion verdict read back from its ROI table.  The page is
built from what is in OUTPUT_DIR, so it is redrawn after every run and never goes stale.
"""

from __future__ import annotations

import csv
from pathlib import Path

from hermesflow.derivatives.html import escape, link, page
from hermesflow.derivatives.writing import write_text

INDEX_NAME = "index.html"


def session_status(roi_table: Path) -> tuple[str, str]:
    """``(status, one line)`` of a session from its ROI table's QC columns (first row).

    Read with the ``csv`` module: the index reads every table of OUTPUT_DIR after each run,
    and ``pandas.read_csv`` took 1 ms a table to read one row.
    """
    with open(roi_table, newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows, [])
        row = dict(zip(header, next(rows, []), strict=False))
    if "qc_status" not in row:
        return "n/a", "no motion QC recorded"

    def number(column: str) -> float:
        text = row.get(column, "n/a")
        return float("nan") if text == "n/a" else float(text)

    line = (f"mean FD {number('qc_mean_fd'):.2f} mm, max FD {number('qc_max_fd'):.2f} mm, "
            f"{100 * number('qc_fraction_above'):.1f}% volumes above threshold")
    reason = row.get("qc_reason", "n/a")
    if row["qc_status"] == "fail" and reason != "n/a":
        line += f" ({reason})"
    return row["qc_status"], line


def write_index(output_dir: str | Path) -> Path:
    """Write ``OUTPUT_DIR/index.html`` from the session ROI tables and reports found there."""
    out = Path(output_dir)
    entries: dict[str, list[str]] = {}
    for roi_table in sorted(out.glob("sub-*/ses-*/func/*_roimeasures.tsv")):
        subject, session = roi_table.parts[-4], roi_table.parts[-3]
        status, line = session_status(roi_table)
        stem = roi_table.name.removesuffix("_roimeasures.tsv")
        report = roi_table.with_name(f"{stem}_report.html")
        label = link(report, session, out) if report.exists() else escape(session)
        entries.setdefault(subject, []).append(
            f'<li class="session">{label}: <span class="{escape(status)}">'
            f"{escape(status.upper())}</span> {escape(line)}</li>")
    body = "".join(f"<h2>{escape(subject)}</h2><ul>{''.join(lines)}</ul>"
                   for subject, lines in entries.items()) or "<p>No sessions processed.</p>"
    groups = sorted(out.glob("group/*_desc-report.html"))
    if groups:
        body = ("<p>Group: " + ", ".join(link(g, g.name, out) for g in groups) + "</p>"
                + body)
    return write_text(out / INDEX_NAME, page("hermesflow: sessions and their QC", body))
