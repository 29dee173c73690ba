"""The group report: what a trial statistician reads, in the order a CONSORT report asks.

1. Trial flow: randomised and treated by arm; sessions expected, recorded, imaged, failing the
   motion QC, excluded from the models, with each failure's reason.
2. The primary outcomes' arm x time results in one table (ITT and as-treated).
3. A forest plot of the arm x time effects of every reported outcome.
4. Trajectories by arm (mean and 95 % CI bands; each patient faint).
5. Safety and feasibility tables; 6. links to every session report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hermesflow.derivatives.html import (
    ARM_COLOURS,
    escape,
    figure_uri,
    image,
    link,
    page,
    pyplot,
    table,
)
from hermesflow.derivatives.writing import write_text

# The trial's primary outcomes when the config names none.
DEFAULT_PRIMARY = ("mi4a_ipsi_psc", "mi4p_ipsi_psc", "nihss_motor", "fm_motor")
RESULT_COLUMNS = ("outcome", "analysis_set", "term", "estimate", "ci_low", "ci_high", "p_wald",
                  "p_randomisation", "p_adjusted", "n_subjects", "n_observations", "converged")


@dataclass
class TrialRecords:
    """The trial's own records beside the model tables (each optional).

    Attributes
    ----------
    participants
        ``participants.tsv`` (participant_id, arm, treated).
    sessions
        Every participant's ``sessions.tsv`` rows (participant_id, session_id, months).
    session_qc
        One row per imaged session: ``qc_status``, ``qc_reason``, ``excluded``.
    session_reports
        ``(participant_id, session_id) -> report page``.
    """

    participants: pd.DataFrame | None = None
    sessions: pd.DataFrame | None = None
    session_qc: pd.DataFrame | None = None
    session_reports: dict[tuple[str, str], str] = field(default_factory=dict)


def trial_flow(records: TrialRecords) -> pd.DataFrame:
    """CONSORT-style counts, one column per arm and a total.

    Sessions expected are every randomised participant at every planned time point (the
    session labels of all ``sessions.tsv``); recorded are the ``sessions.tsv`` rows; imaged are
    the sessions with an ROI table.
    """
    participants = records.participants
    arms = sorted(participants["arm"].astype(str).unique())
    arm_of = dict(zip(participants["participant_id"], participants["arm"].astype(str),
                      strict=True))
    planned = records.sessions["session_id"].nunique() if records.sessions is not None else 0
    qc = records.session_qc if records.session_qc is not None else pd.DataFrame(
        columns=["participant_id", "session_id", "qc_status", "excluded"])
    excluded = qc["excluded"] == "yes" if "excluded" in qc else pd.Series(False, index=qc.index)

    def by_arm(ids: pd.Series) -> list[int]:
        counts = [int((ids.map(arm_of) == arm).sum()) for arm in arms]
        return [*counts, int(ids.map(arm_of).notna().sum())]

    ids = participants["participant_id"]
    rows = {
        "randomised": by_arm(ids),
        "treated": by_arm(ids[participants["treated"].astype(str) == "yes"]),
        "sessions expected": [planned * n for n in by_arm(ids)],
        "sessions recorded (sessions.tsv)": by_arm(records.sessions["participant_id"])
        if records.sessions is not None else [0] * (len(arms) + 1),
        "sessions imaged": by_arm(qc["participant_id"]),
        "sessions failing motion QC": by_arm(qc.loc[qc["qc_status"] == "fail",
                                                    "participant_id"]),
        "sessions excluded from the models": by_arm(qc.loc[excluded, "participant_id"]),
        "sessions modelled (imaging)": by_arm(qc.loc[~excluded, "participant_id"]),
    }
    return pd.DataFrame([[name, *counts] for name, counts in rows.items()],
                        columns=["", *arms, "total"])


def qc_failures(records: TrialRecords) -> pd.DataFrame:
    """The sessions failing the motion QC with their reason and whether they were excluded."""
    qc = records.session_qc
    if qc is None or not (qc["qc_status"] == "fail").any():
        return pd.DataFrame()
    columns = [c for c in ("participant_id", "session_id", "qc_mean_fd", "qc_reason",
                           "excluded") if c in qc.columns]
    return qc.loc[qc["qc_status"] == "fail", columns].reset_index(drop=True)


def primary_results(models: pd.DataFrame, primary: list[str]) -> pd.DataFrame:
    """The arm x time rows of the primary outcomes, ITT and as-treated, in ``primary`` order."""
    rows = models[models["outcome"].isin(primary)
                  & models["term"].astype(str).str.startswith("arm:time")]
    order = {name: i for i, name in enumerate(primary)}
    rows = rows.assign(_order=rows["outcome"].map(order)).sort_values(
        ["_order", "analysis_set", "term"], kind="stable")
    columns = [c for c in RESULT_COLUMNS if c in rows.columns]
    return rows[columns].reset_index(drop=True)


def forest_figure(long: pd.DataFrame, models: pd.DataFrame, outcomes: list[str]) -> str:
    """Arm x time estimates with 95 % CI of every outcome, in SD units of the outcome.

    Outcomes differ in units (% signal change, points of a scale): each estimate is divided by
    the outcome's standard deviation over all sessions so they share one axis.
    """
    rows = models[models["outcome"].isin(outcomes)
                  & models["term"].astype(str).str.startswith("arm:time")
                  & models["estimate"].notna()]
    sd = long.groupby("outcome")["value"].std()
    labels = list(dict.fromkeys(zip(rows["outcome"], rows["term"], strict=True)))
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 0.28 * len(labels) + 1.2))
    markers = {"itt": ("o", -0.15), "as_treated": ("s", 0.15)}
    for analysis_set, (marker, offset) in markers.items():
        subset = rows[rows["analysis_set"] == analysis_set]
        for outcome, term, estimate, low, high in subset[
                ["outcome", "term", "estimate", "ci_low", "ci_high"]].itertuples(index=False):
            scale = sd.get(outcome, np.nan) or np.nan
            y = labels.index((outcome, term)) + offset
            axis.plot([low / scale, high / scale], [y, y], color="tab:blue", linewidth=1)
            axis.plot(estimate / scale, y, marker=marker, color="tab:blue", markersize=4)
        axis.plot([], [], marker=marker, linestyle="none", color="tab:blue",
                  label=analysis_set.replace("_", "-"))
    axis.axvline(0, color="k", linewidth=0.8)
    axis.set_yticks(range(len(labels)))
    axis.set_yticklabels([f"{o} {t.removeprefix('arm:')}" for o, t in labels], fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("arm x time effect (SD of the outcome), 95% CI")
    axis.legend(fontsize=7)
    return figure_uri(figure)


def trajectory_figure(long: pd.DataFrame, outcome: str) -> str:
    """Each patient faint, the arm's mean and 95 % CI band (t quantile) over time."""
    from scipy import stats

    rows = long[long["outcome"] == outcome].dropna(subset=["value", "months"])
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4.2, 3.2))
    for (arm, _subject), subject_rows in rows.groupby(["arm", "participant_id"]):
        subject_rows = subject_rows.sort_values("months")
        axis.plot(subject_rows["months"], subject_rows["value"],
                  color=ARM_COLOURS.get(arm, "k"), alpha=0.2, linewidth=0.7)
    for arm, arm_rows in rows.groupby("arm"):
        summary = arm_rows.groupby("months")["value"].agg(["mean", "std", "count"])
        half = stats.t.ppf(0.975, np.maximum(summary["count"] - 1, 1)) * summary["std"] \
            / np.sqrt(summary["count"])
        colour = ARM_COLOURS.get(arm, "k")
        axis.fill_between(summary.index, summary["mean"] - half.fillna(0),
                          summary["mean"] + half.fillna(0), color=colour, alpha=0.2)
        axis.plot(summary.index, summary["mean"], color=colour, linewidth=2.5, marker="o",
                  label=f"{arm} (mean, 95% CI)")
    axis.set_xscale("log")
    axis.set_xlabel("months since stroke")
    axis.set_title(outcome)
    axis.legend(fontsize=7)
    return figure_uri(figure)


def _session_links(records: TrialRecords, page_dir: Path) -> str:
    items = []
    for subject in sorted({s for s, _ in records.session_reports}):
        links = [link(records.session_reports[key], key[1], page_dir)
                 for key in sorted(records.session_reports) if key[0] == subject]
        items.append(f"<li>{escape(subject)}: {' '.join(links)}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<p>No session reports found.</p>"


def group_report(path: str | Path, *, long: pd.DataFrame, models: pd.DataFrame,
                 figure_outcomes: list[str], table_outcomes: list[str] | None = None,
                 safety: dict[str, pd.DataFrame] | None = None,
                 records: TrialRecords | None = None, primary: list[str] | None = None,
                 page_dir: str | Path | None = None) -> Path:
    """Write the group report page.

    Parameters
    ----------
    figure_outcomes
        Outcomes drawn as trajectories by arm.
    table_outcomes
        Outcomes in the forest plot (every modelled outcome if None).  The group stage
        chooses both from the measures' roles
        (:func:`hermesflow.group.long_table.report_outcomes`).
    records
        participants, sessions, the sessions' QC and report pages (trial flow and links).
    primary
        The primary outcomes (:data:`DEFAULT_PRIMARY` if None or empty).
    page_dir
        The folder the page is read from (links to the session reports are relative to it).
    """
    records = records or TrialRecords()
    primary = list(primary or DEFAULT_PRIMARY)
    outcomes = list(table_outcomes) if table_outcomes is not None else list(
        dict.fromkeys(models["outcome"]))
    n_subjects = long["participant_id"].nunique()
    n_sessions = long[["participant_id", "session_id"]].drop_duplicates().shape[0]
    body = f"<p>{n_subjects} participants, {n_sessions} sessions.</p><h2>Trial flow</h2>"
    if records.participants is not None:
        body += table(trial_flow(records), table_id="trial-flow")
        failures = qc_failures(records)
        if not failures.empty:
            body += (f"<h3>Sessions failing the motion QC</h3>"
                     f"{table(failures, table_id='qc-failures')}")
    else:
        body += '<p class="note">participants.tsv not given.</p>'
    body += (f"<h2>Primary outcomes: arm x time</h2><p class=\"note\">{escape(', '.join(primary))}"
             f"; every term of every outcome is in the model table (desc-mixedlm.tsv).</p>"
             f"{table(primary_results(models, primary), digits=4, table_id='primary')}")
    body += (f"<h2>Arm x time effects of every outcome</h2>"
             f"{image(forest_figure(long, models, outcomes), 'forest plot')}")
    figures = "".join(image(trajectory_figure(long, o), f"trajectory {o}")
                      for o in figure_outcomes if (long["outcome"] == o).any())
    body += f"<h2>Trajectories by arm</h2>{figures}"
    for name, frame in (safety or {}).items():
        body += f"<h2>Safety and feasibility: {escape(name.replace('_', ' '))}</h2>{table(frame)}"
    body += "<h2>Session reports</h2>" + _session_links(
        records, Path(page_dir) if page_dir else Path(path).parent)
    return write_text(path, page("hermesflow group report", body))
