"""Errors of the SLURM backend: one line each, naming the command or file and the fix.

All are :class:`SlurmError`, so ``hermesflow``'s main reports them in one line and exits 2.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hermesflow.errors import HermesflowError


class SlurmError(HermesflowError):
    """A SLURM command that is missing or failed; the message names it and the fix."""


class SlurmNotFoundError(SlurmError):
    """A SLURM client command (``sbatch``, ``sacct``, ``scontrol``) is not on ``PATH``."""

    def __init__(self, command: str):
        super().__init__(f"{command}: not found on PATH -- install the SLURM client commands "
                         "(Debian: slurm-client) or run on the cluster's login node")


class ControllerUnreachableError(SlurmError):
    """A SLURM command ran but could not reach ``slurmctld`` (or got no answer in time)."""

    def __init__(self, argv: list[str], detail: str):
        super().__init__(f"`{shlex.join(argv)}`: cannot reach the SLURM controller ({detail}) "
                         "-- check that slurmctld runs and slurm.conf (or $SLURM_CONF) names it")


class JobRecordError(SlurmError):
    """The job record (``jobs.json``) is missing, unreadable or has no submission."""

    def __init__(self, path: Path, problem: str, fix: str):
        super().__init__(f"{path}: {problem} -- {fix}")
