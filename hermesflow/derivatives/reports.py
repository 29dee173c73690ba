"""HTML reports: one per subject x session, one for the group.

Self-contained pages (figures embedded as PNG data URIs, no scripts, no network), so they open
from a cluster's file system, travel by e-mail, and render the same in any browser.  Figures are
drawn with nilearn (stat maps with the ROI outlines) and matplotlib (trajectories by arm).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from nilearn import plotting  # noqa: E402

from hermesflow import __version__  # noqa: E402
from hermesflow.derivatives.writing import write_text  # noqa: E402

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
img { max-width: 100%; }
.note { color: #666; font-size: 0.85em; }
"""
# ROI outline colours, given in ROI name order (matplotlib's tab10 without red and grey, which
# the z map and the control arm use).
PALETTE = ("tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan")


def _figure_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, (float, np.floating)):
                text = "n/a" if np.isnan(value) else f"{value:.{digits}g}"
                cells.append(f"<td>{text}</td>")
            else:
                cells.append(f'<td class="text">{html.escape(str(value))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{body}"
            f"<p class=\"note\">hermesflow {__version__}</p></body></html>\n")


def session_report(path: str | Path, *, title: str, z_map: str,
                   roi_masks: dict[tuple[str, str], np.ndarray], roi_table: pd.DataFrame,
                   lesion_side: str) -> Path:
    """A session's z map with the outlines of its ROIs, and its ROI measures."""
    z_img = nib.load(z_map)
    display = plotting.plot_stat_map(z_img, threshold=3.1, display_mode="z",
                                     cut_coords=[40, 50, 60, 70], black_bg=False,
                                     title="move > rest (z > 3.1)")
    rois = sorted({roi for roi, _side in roi_masks})
    colours = {roi: PALETTE[i % len(PALETTE)] for i, roi in enumerate(rois)}
    for (roi, _side), mask in roi_masks.items():
        if mask.any():
            display.add_contours(nib.Nifti1Image(mask.astype(np.uint8), z_img.affine),
                                 levels=[0.5], colors=colours[roi], linewidths=1)
    figure = _figure_uri(display.frame_axes.figure)
    display.close()
    wide = roi_table.pivot_table(index=["roi", "hemi", "side"], columns="measure",
                                 values="value", sort=False).reset_index()
    legend = ", ".join(f"{html.escape(roi)} {colours[roi].removeprefix('tab:')}" for roi in rois)
    body = (f"<p>Lesion side: <b>{html.escape(lesion_side)}</b>; outlines: {legend}.</p>"
            f"<img alt=\"z map\" src=\"{figure}\">"
            f"<h2>ROI measures</h2>{_table(wide)}")
    return write_text(path, _page(title, body))


def _trajectories(long: pd.DataFrame, outcome: str):
    rows = long[long["outcome"] == outcome].dropna(subset=["value", "months"])
    figure, axis = plt.subplots(figsize=(4.2, 3.2))
    colours = {"msc": "tab:red", "control": "tab:gray"}
    for (arm, _subject), subject_rows in rows.groupby(["arm", "participant_id"]):
        subject_rows = subject_rows.sort_values("months")
        axis.plot(subject_rows["months"], subject_rows["value"], color=colours.get(arm, "k"),
                  alpha=0.3, linewidth=0.8)
    for arm, arm_rows in rows.groupby("arm"):
        means = arm_rows.groupby("months")["value"].mean()
        axis.plot(means.index, means.values, color=colours.get(arm, "k"), linewidth=2.5,
                  marker="o", label=f"{arm} (mean)")
    axis.set_xscale("log")
    axis.set_xlabel("months since stroke")
    axis.set_title(outcome)
    axis.legend(fontsize=7)
    return _figure_uri(figure)


def group_report(path: str | Path, *, long: pd.DataFrame, models: pd.DataFrame,
                 figure_outcomes: list[str], table_outcomes: list[str] | None = None,
                 safety: dict[str, pd.DataFrame] | None = None) -> Path:
    """The trial's answer: arm x time terms per outcome, trajectories, safety.

    Parameters
    ----------
    figure_outcomes
        Outcomes drawn as trajectories by arm.
    table_outcomes
        Outcomes whose arm x time terms are tabulated (every modelled outcome if None).
        The group stage chooses both from the measures' roles
        (:func:`hermesflow.group.long_table.report_outcomes`).
    """
    shown = (models["outcome"].isin(table_outcomes) if table_outcomes is not None
             else pd.Series(True, index=models.index))
    arm_terms = models[shown & models["term"].astype(str).str.startswith("arm:time")]
    columns = [c for c in ("outcome", "analysis_set", "term", "estimate", "ci_low", "ci_high",
                           "p_wald", "p_randomisation", "n_subjects", "n_observations",
                           "converged", "warnings") if c in arm_terms.columns]
    figures = "".join(
        f'<img alt="{html.escape(o)}" src="{_trajectories(long, o)}">'
        for o in figure_outcomes if (long["outcome"] == o).any())
    n_subjects = long["participant_id"].nunique()
    n_sessions = long[["participant_id", "session_id"]].drop_duplicates().shape[0]
    body = (f"<p>{n_subjects} participants, {n_sessions} sessions.</p>"
            f"<h2>Trajectories by arm</h2>{figures}"
            f"<h2>Arm x time (mixed models)</h2><p class=\"note\">The reported ROI measures "
            f"and the clinical scores; every outcome is in the model table "
            f"(desc-mixedlm.tsv).</p>{_table(arm_terms[columns])}")
    for name, table in (safety or {}).items():
        body += f"<h2>Safety: {html.escape(name.replace('_', ' '))}</h2>{_table(table)}"
    return write_text(path, _page("hermesflow group report", body))
