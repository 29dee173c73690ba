"""Status of the participant tasks and the group job: sacct, then scontrol, then exit files.

Status follows pydra's SLURM worker, not Nipype's plugin (for which every failure reads as
"result file missing"): ``sacct`` gives each task's final state and exit code, so COMPLETED,
FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED and CANCELLED are told apart.  Without
accounting (no slurmdbd: ``sacct`` says "accounting storage is disabled") the same fields come
from ``scontrol show job`` (jobs the controller still holds, see ``MinJobAge``) and then from
the exit files the tasks wrote.  Tasks sacct does not know yet (slurmdbd lags behind the
controller) are asked of scontrol too.  A job of another name than the record's is never read
as ours: a controller that lost its state numbers jobs from 1 again.  A task no source knows
is UNKNOWN (never started, or forgotten), and ``resume`` reruns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hermesflow.cluster import commands
from hermesflow.cluster.commands import parse_indices, sacct_argv, scontrol_argv
from hermesflow.cluster.errors import JobRecordError, SlurmError
from hermesflow.cluster.records import RECORD_NAME, JobRecord

#: Final state of a task that needs no rerun.
DONE = frozenset({"COMPLETED"})
#: Final states of tasks that failed or were cut short: ``resume`` resubmits them.
RESUBMIT = frozenset({"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                      "CANCELLED", "BOOT_FAIL", "DEADLINE", "REVOKED", "UNKNOWN"})
#: States of tasks that have not ended yet.
ACTIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                    "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "STOPPED",
                    "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "RESV_DEL_HOLD"})


@dataclass
class TaskState:
    """The final (or current) state of one job or array task."""

    job_id: str
    state: str
    exit_code: str = ""
    elapsed: str = ""
    source: str = ""
    name: str = ""


@dataclass
class TaskStatus:
    """The latest task of one participant (array index ``index``) and where its state came
    from (``sacct``, ``scontrol``, ``exit file`` or ``""``)."""

    index: int
    label: str
    array_job: str
    state: str
    exit_code: str
    elapsed: str
    source: str


@dataclass
class StatusReport:
    """Every participant's latest task and the latest group job."""

    tasks: list[TaskStatus]
    group: TaskState

    @property
    def finished(self) -> bool:
        """No task and not the group job is pending or running."""
        return all(t.state not in ACTIVE for t in self.tasks) and self.group.state not in ACTIVE

    @property
    def all_completed(self) -> bool:
        """Every task and the group job completed."""
        return all(t.state in DONE for t in self.tasks) and self.group.state in DONE

    def to_resubmit(self) -> list[int]:
        """The array indices ``resume`` reruns."""
        return resubmit_indices(self.tasks)


def resubmit_indices(tasks: list[TaskStatus]) -> list[int]:
    """Indices of the tasks that failed or were cut short (states in :data:`RESUBMIT`)."""
    return sorted(t.index for t in tasks if t.state in RESUBMIT)


def _base_state(state: str) -> str:
    # sacct writes "CANCELLED by 0"; truncated columns end in "+".
    return state.split()[0].rstrip("+").upper() if state.strip() else "UNKNOWN"


def parse_sacct(text: str) -> dict[str, TaskState]:
    """``sacct --parsable2`` lines (JobID|State|ExitCode|Elapsed|JobName) -> states by ``ID`` or
    ``ARRAYJOB_INDEX``; a pending range ``ID_[0-2]`` is expanded."""
    states: dict[str, TaskState] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 4 or not fields[0]:
            continue
        job_id, state, exit_code, elapsed = fields[:4]
        name = fields[4] if len(fields) > 4 else ""
        job, _, index = job_id.partition("_")
        if "." in job_id:  # a step (batch, extern): the allocation line is what counts
            continue
        keys = [f"{job}_{i}" for i in parse_indices(index)] if index.startswith("[") else [job_id]
        for key in keys:
            states[key] = TaskState(key, _base_state(state), exit_code, elapsed, "sacct",
                                    name)
    return states


def _key_values(line: str) -> dict[str, str]:
    return dict(re.findall(r"(?:^|\s)([\w/:]+)=(\S*)", line))


def parse_scontrol(text: str) -> dict[str, TaskState]:
    """``scontrol --oneliner show job`` lines -> states by ``ID`` or ``ARRAYJOB_INDEX``."""
    states: dict[str, TaskState] = {}
    for line in text.splitlines():
        kv = _key_values(line)
        if "JobId" not in kv:
            continue
        state = _base_state(kv.get("JobState", ""))
        exit_code, elapsed = kv.get("ExitCode", ""), kv.get("RunTime", "")
        if "ArrayTaskId" in kv:
            keys = [f"{kv['ArrayJobId']}_{i}" for i in parse_indices(kv["ArrayTaskId"])]
        else:
            keys = [kv["JobId"]]
        for key in keys:
            states[key] = TaskState(key, state, exit_code, elapsed, "scontrol",
                                    kv.get("JobName", ""))
    return states


def _exit_files(folder: Path, array_job: str, indices: list[int]) -> dict[str, TaskState]:
    # The last resort: what each task's batch script wrote before exiting.
    states = {}
    for index in indices:
        key = f"{array_job}_{index}"
        path = folder / "exit" / key
        try:
            code = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        states[key] = TaskState(key, "COMPLETED" if code == 0 else "FAILED", f"{code}:0", "",
                                "exit file")
    return states


def query_states(job_ids: list[str], wanted: set[str] | None = None,
                 names: set[str] | None = None) -> dict[str, TaskState]:
    """States of the given jobs (arrays expanded by task): sacct first; what it does not know
    (no slurmdbd, or a job not yet in the database) from scontrol.  With ``names``, jobs of
    other names (another run under a reused job id) are left out."""
    if not job_ids:
        return {}

    def ours(found: dict[str, TaskState]) -> dict[str, TaskState]:
        return {k: v for k, v in found.items() if names is None or v.name in names}

    try:
        states = ours(parse_sacct(commands.run_command(sacct_argv(job_ids))))
    except SlurmError:
        # No sacct, no slurmdbd ("accounting storage is disabled") or its database is down:
        # the controller still knows the jobs it holds (MinJobAge).  A controller that does
        # not answer is reported by scontrol below.
        states = {}
    if wanted is not None and wanted <= states.keys():
        return states
    for job_id in job_ids:
        try:
            found = parse_scontrol(commands.run_command(scontrol_argv(job_id)))
        except SlurmError as err:
            # A job the controller has forgotten (past MinJobAge) is not an error here.
            if "invalid job id" not in str(err).lower():
                raise
            continue
        states = {**ours(found), **states}
    return states


def status(output_dir: str | Path, record: JobRecord | None = None) -> StatusReport:
    """Each participant's latest task, and the latest group job."""
    record = record or JobRecord.load(output_dir)
    if not record.submissions:
        raise JobRecordError(record.folder / RECORD_NAME, "no submission recorded",
                             "submit with `hermesflow cluster submit`")
    latest: dict[int, str] = {}
    for submission in record.submissions:
        for index in submission.indices:
            latest[index] = submission.array_job
    group_job = record.submissions[-1].group_job
    job_ids = sorted({*latest.values(), group_job} - {""}, key=int)
    wanted = {f"{j}_{i}" for i, j in latest.items()} | {group_job}
    names = {record.job_name("participant"), record.job_name("group")}
    states = query_states(job_ids, wanted, names if record.token else None)
    for array_job in set(latest.values()):
        missing = [i for i, j in latest.items() if j == array_job and f"{j}_{i}" not in states]
        states.update(_exit_files(record.folder, array_job, missing))
    tasks = []
    for index, label in enumerate(record.participants):
        array_job = latest.get(index, "")
        found = states.get(f"{array_job}_{index}", TaskState(f"{array_job}_{index}", "UNKNOWN"))
        tasks.append(TaskStatus(index, label, array_job, found.state, found.exit_code,
                                found.elapsed, found.source))
    group = states.get(group_job, TaskState(group_job, "UNKNOWN"))
    return StatusReport(tasks, group)
