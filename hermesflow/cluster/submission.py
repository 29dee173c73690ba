"""Submission: one array task per participant, a group job after them, and resubmission.

``submit`` writes, under ``OUTPUT_DIR/logs/slurm/``:

* ``participants.txt`` -- one label a line; array task *i* runs line *i + 1*;
* ``participant.sbatch`` and ``group.sbatch`` -- the batch scripts (:mod:`.scripts`);
* ``jobs.json`` -- the job record (:mod:`.records`): folders, participants, options and every
  submission (array job id, its indices, the group job id);
* ``exit/ARRAYJOB_INDEX`` -- the exit status each task wrote itself (a last resort for status);
* ``participant_ARRAYJOB_INDEX.log`` and ``group_JOB.log`` -- what the jobs printed.

The group job depends on the array with ``afterany``: it runs once every task has ended, on
whatever ROI tables the tasks wrote, so one bad participant does not hold the others back.
``resume`` resubmits only the tasks that failed or were cut short (``--array=<indices>``) and
a new group job depending on them.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from hermesflow.cluster import commands
from hermesflow.cluster.commands import format_indices, job_id, sbatch_argv
from hermesflow.cluster.errors import SlurmError
from hermesflow.cluster.records import (
    PARTICIPANTS_NAME,
    RECORD_NAME,
    JobRecord,
    SlurmOptions,
    Submission,
)
from hermesflow.cluster.scripts import group_script, participant_script
from hermesflow.cluster.states import ACTIVE, DONE, status
from hermesflow.derivatives.writing import write_text
from hermesflow.errors import HermesflowError


def discover_participants(bids_dir: str | Path) -> list[str]:
    """Labels of the ``sub-*`` folders of ``bids_dir``, sorted, without ``sub-``."""
    return sorted(p.name[4:] for p in Path(bids_dir).glob("sub-*") if p.is_dir())


def submit(bids_dir: str | Path, output_dir: str | Path, participants: list[str],
           options: SlurmOptions | None = None, work_dir: str | Path | None = None,
           extra_args: list[str] | None = None, python: str = sys.executable) -> JobRecord:
    """Submit one array task per participant and a group job after them; return the record.

    Parameters
    ----------
    bids_dir, output_dir
        The BIDS-App positional arguments of every job (made absolute).
    participants
        Labels, with or without ``sub-``; task *i* runs ``participants[i]``.
    options
        Resources of each job (default :class:`SlurmOptions`).
    work_dir
        Nipype work dir; each participant gets ``WORK/LABEL`` (default ``OUT/../work``).
    extra_args
        Flags added to every participant and group run.
    python
        The interpreter the jobs run ``hermesflow.cli.run`` with.

    Returns
    -------
    JobRecord
        The saved record, with its first submission.
    """
    labels = [p.removeprefix("sub-") for p in participants]
    if not labels:
        raise HermesflowError(f"{bids_dir}: no participants to submit -- pass "
                              "--participant-label or check the sub-* folders")
    output_dir = Path(output_dir).resolve()
    work = Path(work_dir).resolve() if work_dir else output_dir.parent / "work"
    record = JobRecord(bids_dir=str(Path(bids_dir).resolve()), output_dir=str(output_dir),
                       work_dir=str(work), participants=labels,
                       options=options or SlurmOptions(), extra_args=list(extra_args or []),
                       python=python)
    record.folder.mkdir(parents=True, exist_ok=True)
    write_text(record.folder / PARTICIPANTS_NAME, "\n".join(labels) + "\n")
    write_text(record.folder / "participant.sbatch", participant_script(record))
    write_text(record.folder / "group.sbatch", group_script(record))
    _submit_round(record, list(range(len(labels))))
    return record


def _submit_round(record: JobRecord, indices: list[int]) -> Submission:
    # With no index (only the group job failed), the group job is submitted alone.
    folder = record.folder
    array_job = ""
    if indices:
        array_job = job_id(commands.run_command(
            sbatch_argv(folder / "participant.sbatch", array=format_indices(indices))))
    group_job = job_id(commands.run_command(
        sbatch_argv(folder / "group.sbatch", after=array_job or None)))
    submission = Submission(array_job=array_job, indices=indices, group_job=group_job,
                            submitted=datetime.now().isoformat(timespec="seconds"))
    record.submissions.append(submission)
    record.save()
    return submission


def resume(output_dir: str | Path) -> Submission | None:
    """Resubmit the tasks that failed or were cut short, then a new group job.

    With every task completed but the group job failed, only the group job is resubmitted;
    with nothing to redo, ``None``.
    """
    record = JobRecord.load(output_dir)
    report = status(output_dir, record)
    active = [t.state for t in report.tasks if t.state in ACTIVE]
    if active or report.group.state in ACTIVE:
        raise SlurmError(f"{record.folder / RECORD_NAME}: jobs still pending or running "
                         f"({len(active)} task(s), group job {report.group.state}) -- wait "
                         "for them (`hermesflow cluster status`) or scancel them")
    indices = report.to_resubmit()
    if not indices and report.group.state in DONE:
        return None
    return _submit_round(record, indices)
