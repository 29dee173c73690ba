"""The top of the graph: participant level (every session) and group level (the models).

Participant level
    ``subjectsource`` iterates over subjects and ``sessionsource`` over each one's sessions;
    each pair runs :func:`~hermesflow.workflows.session.init_session_wf` on preprocessed data
    from the chosen source (an existing fMRIPrep folder, or fMRIPrep run in a container once
    per participant).
Group level
    ``sessionsource`` iterates over the session ROI tables found in OUTPUT_DIR; a JoinNode
    gathers them all into the long table and fits the mixed models; a sink writes the tables
    into OUTPUT_DIR/group, and the report is drawn from them afterwards.  Sessions that failed
    at participant level are simply absent.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from hermesflow.config import Config
from hermesflow.roi.atlases import atlas_label
from hermesflow.workflows import PARTICIPANT_WF
from hermesflow.workflows.session import init_session_wf


def init_participant_wf(*, config: Config, pairs: list[tuple[str, str]],
                        name: str = PARTICIPANT_WF) -> pe.Workflow:
    """Every ``(subject, session)`` in ``pairs``, each in its own cached branch.

    ``subjectsource`` iterates over subjects; ``sessionsource`` iterates over each subject's
    own sessions (``itersource``), so subjects may have different sessions.  With
    ``--preproc fmriprep`` one fMRIPrep node per subject sits between the two: a participant
    whose fMRIPrep fails stops only its own sessions.
    """
    sessions: dict[str, list[str]] = {}
    for subject, session in sorted(pairs):
        sessions.setdefault(subject, []).append(session)
    workflow = pe.Workflow(name=name)
    subjectsource = pe.Node(niu.IdentityInterface(fields=["subject"]), name="subjectsource")
    subjectsource.iterables = ("subject", list(sessions))
    sessionsource = pe.Node(niu.IdentityInterface(fields=["subject", "session"]),
                            name="sessionsource")
    sessionsource.itersource = ("subjectsource", "subject")
    sessionsource.iterables = [("session", sessions)]
    session_wf = init_session_wf(config=config)
    workflow.connect([
        (subjectsource, sessionsource, [("subject", "subject")]),
        (sessionsource, session_wf, [("subject", "inputnode.subject"),
                                     ("session", "inputnode.session")]),
    ])
    if config.workflow.preproc == "fmriprep":
        # Imported here: the container stack is only needed when fMRIPrep runs.
        from hermesflow.workflows.fmriprep import init_fmriprep_wf

        fmriprep_wf = init_fmriprep_wf(config=config, participants=None)
        workflow.connect([
            (subjectsource, fmriprep_wf, [("subject", "inputnode.participant_label")]),
            (fmriprep_wf, session_wf, [("outputnode.fmriprep_dir", "inputnode.fmriprep_dir")]),
        ])
    elif config.workflow.preproc == "native":
        from hermesflow.workflows.native import init_native_preproc_wf

        # Per subject x session, one cached antspyx node per step, writing the fMRIPrep layout.
        native_wf = init_native_preproc_wf(config=config)
        workflow.connect([
            (sessionsource, native_wf, [("subject", "inputnode.subject"),
                                        ("session", "inputnode.session")]),
            (native_wf, session_wf, [("outputnode.fmriprep_dir", "inputnode.fmriprep_dir")]),
        ])
    else:
        session_wf.inputs.inputnode.fmriprep_dir = config.workflow.fmriprep_dir
    return workflow


def init_group_wf(*, config: Config, roi_tables: list[str], config_file: str,
                  name: str = "hermesflow_group_wf") -> pe.Workflow:
    """Join every session's ROI table, fit the group models, write the tables, then the report.

    ``group_models`` (a JoinNode) keeps its tables in its own folder; ``group_sink`` copies
    them into OUTPUT_DIR/group; ``group_report`` draws the page from the tables as written and
    ``report_sink`` copies it.  The tables never wait for the report: a report that fails
    leaves them written.
    """
    # Imported here: the participant level needs none of the group's statistics.
    from hermesflow.interfaces.group import GroupModels, GroupReport, GroupSink

    ex, wf = config.execution, config.workflow
    atlas = atlas_label(wf.atlas)
    workflow = pe.Workflow(name=name)
    sessionsource = pe.Node(niu.IdentityInterface(fields=["roi_table"]), name="sessionsource")
    sessionsource.iterables = ("roi_table", sorted(roi_tables))
    group = pe.JoinNode(
        GroupModels(bids_dir=ex.bids_dir, config=config_file, n_expected=len(roi_tables)),
        joinsource="sessionsource", joinfield=["roi_tables"], name="group_models",
    )
    # Participants and sessions tables in BIDS_DIR are read but not hashed by Nipype.
    group.overwrite = True
    group_sink = pe.Node(GroupSink(output_dir=ex.output_dir, task=wf.task, atlas=atlas),
                         name="group_sink", run_without_submitting=True, overwrite=True)
    # The report also reads the trial's records (participants, sessions) and links the
    # session reports in OUTPUT_DIR.
    report = pe.Node(GroupReport(bids_dir=ex.bids_dir, output_dir=ex.output_dir,
                                 primary=list(getattr(config.group, "primary", []))),
                     name="group_report", overwrite=True)
    report_sink = pe.Node(GroupSink(output_dir=ex.output_dir, task=wf.task, atlas=atlas),
                          name="report_sink", run_without_submitting=True, overwrite=True)
    workflow.connect([
        (sessionsource, group, [("roi_table", "roi_tables")]),
        (group, group_sink, [("files", "files")]),
        (group_sink, report, [("written", "tables")]),
        (report, report_sink, [("files", "files")]),
    ])
    return workflow


def init_hermesflow_wf(config: Config, *, pairs: list[tuple[str, str]] | None = None,
                       roi_tables: list[str] | None = None,
                       config_file: str | None = None) -> pe.Workflow:
    """The workflow of ``config.execution.analysis_level``."""
    if config.execution.analysis_level == "group":
        workflow = init_group_wf(config=config, roi_tables=roi_tables or [],
                                 config_file=config_file or "")
    else:
        workflow = init_participant_wf(config=config, pairs=pairs or [])
    workflow.base_dir = str(Path(config.execution.work_dir))
    return workflow
