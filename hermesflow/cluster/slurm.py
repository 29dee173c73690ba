"""SLURM: one array task per participant, a dependent group job, status, resubmission.

``submit`` writes, under ``OUTPUT_DIR/logs/slurm/``:

* ``participants.txt`` -- one label a line; array task *i* runs line *i + 1*;
* ``participant.sbatch`` and ``group.sbatch`` -- batch scripts with ``#SBATCH`` lines from
  :class:`SlurmOptions`; each task runs ``hermesflow BIDS OUT participant --participant-label
  LABEL -w WORK/LABEL`` with this Python, the group job ``hermesflow BIDS OUT group``;
* ``jobs.json`` -- the job record: folders, participants, options and every submission
  (array job id, its indices, the group job id);
* ``exit/ARRAYJOB_INDEX`` -- the exit status each task wrote itself (a last resort for status);
* ``participant_ARRAYJOB_INDEX.log`` and ``group_JOB.log`` -- what the jobs printed.

The group job depends on the array with ``afterany``: it runs once every task has ended, on
whatever ROI tables the tasks wrote, so one bad participant does not hold the others back.

Status follows pydra's SLURM worker, not Nipype's plugin (for which every failure reads as
"result file missing"): ``sacct`` gives each task's final state and exit code, so COMPLETED,
FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED and CANCELLED are told apart.  Without
accounting (no slurmdbd: ``sacct`` says "accounting storage is disabled") the same fields come
from ``scontrol show job`` (jobs the controller still holds, see ``MinJobAge``) and then from
the exit files.  Jobs are named ``hermesflow-LEVEL-TOKEN`` with a token per record, and a
job of another name is never read as ours: a controller that lost its state numbers jobs from
1 again.  A task no source knows is UNKNOWN (never started, or forgotten), and ``resume``
reruns it.  ``resume`` resubmits only the tasks that failed or were cut short
(``--array=<indices>``) and a new group job depending on them.

Every command is an argv list for ``subprocess`` (never a shell string).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from hermesflow.derivatives.writing import write_text
from hermesflow.errors import HermesflowError

SLURM_SUBDIR = Path("logs") / "slurm"
RECORD_NAME = "jobs.json"
PARTICIPANTS_NAME = "participants.txt"
COMMAND_TIMEOUT = 60

#: Final state of a task that needs no rerun.
DONE = frozenset({"COMPLETED"})
#: Final states of tasks that failed or were cut short: ``resume`` resubmits them.
RESUBMIT = frozenset({"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                      "CANCELLED", "BOOT_FAIL", "DEADLINE", "REVOKED", "UNKNOWN"})
#: States of tasks that have not ended yet.
ACTIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                    "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED", "STOPPED",
                    "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "RESV_DEL_HOLD"})


class SlurmError(HermesflowError):
    """A SLURM command that is missing or failed; the message names it and the fix."""


class SlurmNotFoundError(SlurmError):
    def __init__(self, command: str):
        super().__init__(f"{command}: not found on PATH -- install the SLURM client commands "
                         "(Debian: slurm-client) or run on the cluster's login node")


class ControllerUnreachableError(SlurmError):
    def __init__(self, argv: list[str], detail: str):
        super().__init__(f"`{shlex.join(argv)}`: cannot reach the SLURM controller ({detail}) "
                         "-- check that slurmctld runs and slurm.conf (or $SLURM_CONF) names it")


class JobRecordError(SlurmError):
    def __init__(self, path: Path, problem: str, fix: str):
        super().__init__(f"{path}: {problem} -- {fix}")


@dataclass
class SlurmOptions:
    """Resources of each job; ``None`` leaves the site's default."""

    partition: str | None = None
    time: str | None = "02:00:00"
    mem_gb: float = 4.0
    cpus: int = 1
    account: str | None = None

    def sbatch_flags(self) -> list[str]:
        flags = [f"--cpus-per-task={self.cpus}", f"--mem={int(self.mem_gb * 1024)}M"]
        if self.time:
            flags.append(f"--time={self.time}")
        if self.partition:
            flags.append(f"--partition={self.partition}")
        if self.account:
            flags.append(f"--account={self.account}")
        return flags


@dataclass
class Submission:
    array_job: str
    indices: list[int]
    group_job: str
    submitted: str


@dataclass
class JobRecord:
    bids_dir: str
    output_dir: str
    work_dir: str
    participants: list[str]
    options: SlurmOptions
    extra_args: list[str] = field(default_factory=list)
    python: str = sys.executable
    submissions: list[Submission] = field(default_factory=list)
    # In the job names, so that status never reads another run's job: job ids restart when a
    # controller loses its state.
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def job_name(self, level: str) -> str:
        return f"hermesflow-{level}-{self.token}" if self.token else f"hermesflow-{level}"

    @property
    def folder(self) -> Path:
        return Path(self.output_dir) / SLURM_SUBDIR

    def save(self) -> Path:
        path = self.folder / RECORD_NAME
        _write_atomic(path, json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, output_dir: str | Path) -> JobRecord:
        path = Path(output_dir) / SLURM_SUBDIR / RECORD_NAME
        try:
            data = json.loads(path.read_text())
            data.setdefault("token", "")  # records written before job names carried one
            data["options"] = SlurmOptions(**data["options"])
            data["submissions"] = [Submission(**s) for s in data["submissions"]]
            return cls(**data)
        except FileNotFoundError as err:
            raise JobRecordError(path, "no SLURM job record",
                                 "submit first with `hermesflow cluster submit`") from err
        except (ValueError, KeyError, TypeError) as err:
            raise JobRecordError(path, f"unreadable job record ({err})",
                                 "resubmit with `hermesflow cluster submit`") from err


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
    index: int
    label: str
    array_job: str
    state: str
    exit_code: str
    elapsed: str
    source: str


@dataclass
class StatusReport:
    tasks: list[TaskStatus]
    group: TaskState

    @property
    def finished(self) -> bool:
        return all(t.state not in ACTIVE for t in self.tasks) and self.group.state not in ACTIVE

    @property
    def all_completed(self) -> bool:
        return all(t.state in DONE for t in self.tasks) and self.group.state in DONE

    def to_resubmit(self) -> list[int]:
        return resubmit_indices(self.tasks)


# -- argv ----------------------------------------------------------------------------------------
def sbatch_argv(script: str | Path, *, array: str | None = None,
                after: str | None = None) -> list[str]:
    argv = ["sbatch", "--parsable"]
    if array is not None:
        argv.append(f"--array={array}")
    if after is not None:
        argv.append(f"--dependency=afterany:{after}")
    return [*argv, str(script)]


def sacct_argv(job_ids: list[str]) -> list[str]:
    return ["sacct", f"--jobs={','.join(job_ids)}", "--allocations", "--parsable2",
            "--noheader", "--format=JobID,State,ExitCode,Elapsed,JobName"]


def scontrol_argv(job_id: str) -> list[str]:
    return ["scontrol", "--oneliner", "show", "job", job_id]


def format_indices(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (the form of ``--array``)."""
    parts, ordered = [], sorted(set(indices))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_indices(text: str) -> list[int]:
    """``"0-2,5"`` or ``"[0-2,5%4]"`` -> ``[0, 1, 2, 5]``."""
    text = text.strip("[]").split("%")[0]
    indices: list[int] = []
    for part in filter(None, text.split(",")):
        start, _, stop = part.partition("-")
        step = 1
        if ":" in stop:
            stop, step_text = stop.split(":")
            step = int(step_text)
        indices.extend(range(int(start), int(stop or start) + 1, step))
    return indices


# -- batch scripts -------------------------------------------------------------------------------
def _directives(name: str, log: Path, options: SlurmOptions) -> str:
    lines = [f"--job-name={name}", f"--output={log}", *options.sbatch_flags()]
    return "\n".join(f"#SBATCH {line}" for line in lines)


def hermesflow_argv(record: JobRecord, level: str) -> list[str]:
    """The command line of one level; the participant's ``$label`` is filled in by the shell."""
    return [record.python, "-m", "hermesflow.cli.run", record.bids_dir, record.output_dir,
            level, "--nprocs", str(record.options.cpus),
            "--mem-gb", f"{record.options.mem_gb:g}", *record.extra_args]


def participant_script(record: JobRecord) -> str:
    folder = record.folder
    argv = shlex.join(hermesflow_argv(record, "participant"))
    work = shlex.quote(record.work_dir)
    exit_dir = shlex.quote(str(folder / "exit"))
    return f"""#!/bin/bash
{_directives(record.job_name("participant"), folder / "participant_%A_%a.log", record.options)}
# Written by hermesflow cluster submit: array task i runs line i+1 of {PARTICIPANTS_NAME}.
set -uo pipefail
label=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(folder / PARTICIPANTS_NAME))})
if [ -z "$label" ]; then
    echo "hermesflow: no participant on line $((SLURM_ARRAY_TASK_ID + 1)) of \
{folder / PARTICIPANTS_NAME}" >&2
    exit 2
fi
echo "hermesflow: participant $label (task $SLURM_ARRAY_TASK_ID of job $SLURM_ARRAY_JOB_ID)"
{argv} --participant-label "$label" -w {work}/"$label"
status=$?
# Kept for `hermesflow cluster status` where sacct has no accounting to ask.
mkdir -p {exit_dir} && echo "$status" > {exit_dir}/"${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
exit "$status"
"""


def group_script(record: JobRecord) -> str:
    argv = hermesflow_argv(record, "group")
    argv += ["--participant-label", *record.participants,
             "-w", str(Path(record.work_dir) / "group")]
    return f"""#!/bin/bash
{_directives(record.job_name("group"), record.folder / "group_%j.log", record.options)}
# Written by hermesflow cluster submit: runs after every participant task has ended.
set -uo pipefail
exec {shlex.join(argv)}
"""


# -- running commands ----------------------------------------------------------------------------
_UNREACHABLE = re.compile(r"unable to contact slurm controller|connection refused|"
                          r"socket timed out|unable to establish|Zero Bytes were transmitted",
                          re.IGNORECASE)


def run_command(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a SLURM command; return its stdout or raise a one-line :class:`SlurmError`."""
    if shutil.which(argv[0]) is None:
        raise SlurmNotFoundError(argv[0])
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise ControllerUnreachableError(argv, f"no answer in {timeout:.0f} s") from err
    if done.returncode != 0:
        detail = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        if _UNREACHABLE.search(done.stderr):
            raise ControllerUnreachableError(argv, detail)
        raise SlurmError(f"`{shlex.join(argv)}` failed: {detail}")
    return done.stdout


def _job_id(stdout: str) -> str:
    # --parsable prints "ID" or "ID;CLUSTER".
    match = re.match(r"\s*(\d+)", stdout)
    if not match:
        raise SlurmError(f"sbatch printed no job id: {stdout.strip()!r}")
    return match.group(1)


# -- submission ----------------------------------------------------------------------------------
def discover_participants(bids_dir: str | Path) -> list[str]:
    return sorted(p.name[4:] for p in Path(bids_dir).glob("sub-*") if p.is_dir())


def submit(bids_dir: str | Path, output_dir: str | Path, participants: list[str],
           options: SlurmOptions | None = None, work_dir: str | Path | None = None,
           extra_args: list[str] | None = None, python: str = sys.executable) -> JobRecord:
    """Submit one array task per participant and a group job after them; return the record."""
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
    _write_atomic(record.folder / PARTICIPANTS_NAME, "\n".join(labels) + "\n")
    _write_atomic(record.folder / "participant.sbatch", participant_script(record))
    _write_atomic(record.folder / "group.sbatch", group_script(record))
    _submit_round(record, list(range(len(labels))))
    return record


def _submit_round(record: JobRecord, indices: list[int]) -> Submission:
    folder = record.folder
    array_job = ""
    if indices:
        array_job = _job_id(run_command(sbatch_argv(folder / "participant.sbatch",
                                                     array=format_indices(indices))))
    group_job = _job_id(run_command(sbatch_argv(folder / "group.sbatch",
                                                after=array_job or None)))
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


def resubmit_indices(tasks: list[TaskStatus]) -> list[int]:
    return sorted(t.index for t in tasks if t.state in RESUBMIT)


# -- status --------------------------------------------------------------------------------------
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
        states = ours(parse_sacct(run_command(sacct_argv(job_ids))))
    except SlurmError:
        # No sacct, no slurmdbd ("accounting storage is disabled") or its database is down:
        # the controller still knows the jobs it holds (MinJobAge).  A controller that does
        # not answer is reported by scontrol below.
        states = {}
    if wanted is not None and wanted <= states.keys():
        return states
    for job_id in job_ids:
        try:
            found = parse_scontrol(run_command(scontrol_argv(job_id)))
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


# -- Nipype's own plugins ------------------------------------------------------------------------
def nipype_plugin_settings(options: SlurmOptions, plugin: str = "SLURMGraph") -> tuple[str, dict]:
    """``(plugin, plugin_args)`` for Nipype's ``SLURM`` or ``SLURMGraph`` plugin.

    The alternative to :func:`submit`: one SLURM job per Nipype node (``SLURM``) or the whole
    graph submitted at once with dependencies (``SLURMGraph``).  Neither tells a TIMEOUT or
    OUT_OF_MEMORY from a crash (every failure reads as "result file missing") and neither
    resubmits; prefer one array task per participant.
    """
    if plugin not in ("SLURM", "SLURMGraph"):
        raise HermesflowError(f"Nipype plugin {plugin!r}: not a SLURM plugin -- "
                              "use 'SLURM' or 'SLURMGraph'")
    args: dict = {"sbatch_args": " ".join(options.sbatch_flags())}
    if plugin == "SLURMGraph":
        args["dont_resubmit_completed_jobs"] = True
    else:
        args["max_tries"] = 2
        args["retry_timeout"] = 2
    return plugin, args


def _write_atomic(path: Path, text: str) -> None:
    write_text(path, text)
