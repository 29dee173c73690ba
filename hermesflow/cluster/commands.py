"""SLURM commands: argv lists for ``sbatch``, ``sacct`` and ``scontrol``, and running them.

Every command is an argv list for ``subprocess`` (never a shell string).  :func:`run_command`
turns the ways a command fails into one-line errors: not installed
(:class:`SlurmNotFoundError`), controller down or silent (:class:`ControllerUnreachableError`),
anything else (:class:`SlurmError` with the command's own message).

The rest of the package calls ``commands.run_command`` through this module, so a test
patches it in one place (``hermesflow.cluster.commands.run_command``).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

from hermesflow.cluster.errors import ControllerUnreachableError, SlurmError, SlurmNotFoundError

COMMAND_TIMEOUT = 60  # s; a controller that takes longer is treated as unreachable

# What sbatch/sacct/scontrol print when slurmctld (or slurmdbd) is not there to answer.
_UNREACHABLE = re.compile(r"unable to contact slurm controller|connection refused|"
                          r"socket timed out|unable to establish|Zero Bytes were transmitted",
                          re.IGNORECASE)


def sbatch_argv(script: str | Path, *, array: str | None = None,
                after: str | None = None) -> list[str]:
    """``sbatch --parsable`` of ``script``, as an array (``"0-2,5"``) and/or after job ``after``.

    ``afterany``: the dependent job runs once every task has ended, whatever its state.
    """
    argv = ["sbatch", "--parsable"]
    if array is not None:
        argv.append(f"--array={array}")
    if after is not None:
        argv.append(f"--dependency=afterany:{after}")
    return [*argv, str(script)]


def sacct_argv(job_ids: list[str]) -> list[str]:
    """``sacct`` of the allocations of ``job_ids``: JobID|State|ExitCode|Elapsed|JobName."""
    return ["sacct", f"--jobs={','.join(job_ids)}", "--allocations", "--parsable2",
            "--noheader", "--format=JobID,State,ExitCode,Elapsed,JobName"]


def scontrol_argv(job_id: str) -> list[str]:
    """``scontrol show job`` of one job (an array job lists all its tasks), one line each."""
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


def job_id(stdout: str) -> str:
    """The job id ``sbatch --parsable`` printed."""
    # --parsable prints "ID" or "ID;CLUSTER".
    match = re.match(r"\s*(\d+)", stdout)
    if not match:
        raise SlurmError(f"sbatch printed no job id: {stdout.strip()!r}")
    return match.group(1)
