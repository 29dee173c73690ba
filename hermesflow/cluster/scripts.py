"""The two batch scripts ``submit`` writes: the participant array and the group job.

Each task of ``participant.sbatch`` reads its label from line *i + 1* of ``participants.txt``
(``i`` = ``SLURM_ARRAY_TASK_ID``), runs ``hermesflow BIDS OUT participant --participant-label
LABEL -w WORK/LABEL`` with the record's Python and writes its exit status to
``exit/ARRAYJOB_INDEX`` (read by ``status`` when neither sacct nor scontrol knows the task).
``group.sbatch`` runs ``hermesflow BIDS OUT group`` on every participant.  ``#SBATCH`` lines
come from :class:`~hermesflow.cluster.records.SlurmOptions`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hermesflow.cluster.records import PARTICIPANTS_NAME, JobRecord, SlurmOptions


def _directives(name: str, log: Path, options: SlurmOptions) -> str:
    lines = [f"--job-name={name}", f"--output={log}", *options.sbatch_flags()]
    return "\n".join(f"#SBATCH {line}" for line in lines)


def hermesflow_argv(record: JobRecord, level: str) -> list[str]:
    """The command line of one level; the participant's ``$label`` is filled in by the shell."""
    return [record.python, "-m", "hermesflow.cli.run", record.bids_dir, record.output_dir,
            level, "--nprocs", str(record.options.cpus),
            "--mem-gb", f"{record.options.mem_gb:g}", *record.extra_args]


def participant_script(record: JobRecord) -> str:
    """The array script: one participant per task, its exit status kept in a file."""
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
    """The group script: the group level over every participant of the record."""
    argv = hermesflow_argv(record, "group")
    argv += ["--participant-label", *record.participants,
             "-w", str(Path(record.work_dir) / "group")]
    return f"""#!/bin/bash
{_directives(record.job_name("group"), record.folder / "group_%j.log", record.options)}
# Written by hermesflow cluster submit: runs after every participant task has ended.
set -uo pipefail
exec {shlex.join(argv)}
"""
