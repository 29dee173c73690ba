"""The job record: what was submitted, with which resources, and every submission since.

The record lives in ``OUTPUT_DIR/logs/slurm/jobs.json`` (written through
:mod:`hermesflow.derivatives.writing`, so a crash never leaves half a record) and is all that
``status`` and ``resume`` need: folders, participants (array task *i* is participant *i*),
options, extra flags, the Python that runs the jobs, and each submission's array job, indices
and group job.

Jobs are named ``hermesflow-LEVEL-TOKEN`` with a token per record, so that status never reads
another run's job as ours: a controller that lost its state numbers jobs from 1 again.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hermesflow.cluster.errors import JobRecordError
from hermesflow.derivatives.writing import write_text

SLURM_SUBDIR = Path("logs") / "slurm"
RECORD_NAME = "jobs.json"
PARTICIPANTS_NAME = "participants.txt"


@dataclass
class SlurmOptions:
    """Resources of each job; ``None`` leaves the site's default."""

    partition: str | None = None
    time: str | None = "02:00:00"
    mem_gb: float = 4.0
    cpus: int = 1
    account: str | None = None

    def sbatch_flags(self) -> list[str]:
        """The ``sbatch`` flags of these resources (memory in whole MiB)."""
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
    """One round: the array job (``""`` when no task was resubmitted), its indices, the group
    job after it and when (ISO time, seconds)."""

    array_job: str
    indices: list[int]
    group_job: str
    submitted: str


@dataclass
class JobRecord:
    """Everything ``submit`` decided, saved so ``status`` and ``resume`` can follow it up."""

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
        """``hermesflow-LEVEL-TOKEN`` (``hermesflow-LEVEL`` for records without a token)."""
        return f"hermesflow-{level}-{self.token}" if self.token else f"hermesflow-{level}"

    @property
    def folder(self) -> Path:
        """``OUTPUT_DIR/logs/slurm``: scripts, record, logs and exit files."""
        return Path(self.output_dir) / SLURM_SUBDIR

    def save(self) -> Path:
        """Write the record atomically; return its path."""
        path = self.folder / RECORD_NAME
        write_text(path, json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, output_dir: str | Path) -> JobRecord:
        """The record under ``output_dir``; :class:`JobRecordError` says how to fix its lack."""
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
