"""One run at a time per OUTPUT_DIR and sessions: a lock that names the other run.

Each run holding OUTPUT_DIR leaves a record ``OUTPUT_DIR/logs/.run-<host>-<pid>.json`` (host,
pid, start, level, participants, work folder), written and checked under an exclusive
``flock`` of ``OUTPUT_DIR/logs/.lock`` so that two runs starting together cannot both pass.
Runs may share OUTPUT_DIR when they cannot collide: participant-level runs of disjoint
participants in their own work folders (the SLURM array tasks).  A group run excludes every
other run.  A record is broken only when its process is gone (same host, no such pid, or a pid
reused by a younger process); a record from another host is trusted, and its file named so the
user can remove it.  When no other run holds OUTPUT_DIR, the temporary files of killed writers
are removed.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from hermesflow.errors import InputError

LOGGER = logging.getLogger("hermesflow")
RECORD_PREFIX = ".run-"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (ticks since boot), to tell a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _alive(record: dict) -> bool:
    if record.get("host") != socket.gethostname():
        return True  # cannot be checked from here
    pid = int(record.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    recorded, now = record.get("proc_start"), _process_start(pid)
    return recorded is None or now is None or recorded == now


def _collides(mine: dict, other: dict) -> bool:
    if "group" in (mine["level"], other.get("level")):
        return True
    if mine["work_dir"] == other.get("work_dir"):
        return True
    ours, theirs = set(mine["participants"]), set(other.get("participants") or [])
    # No labels: every participant.
    return not ours or not theirs or bool(ours & theirs)


def _describe(record: dict, path: Path) -> str:
    who = ", ".join(record.get("participants") or []) or "all participants"
    return (f"in use by another hermesflow run (host {record.get('host')}, pid "
            f"{record.get('pid')}, started {record.get('start')}, {record.get('level')} level, "
            f"{who}; lock {path})")


@contextmanager
def output_lock(output_dir: str | Path, *, level: str, participants: Sequence[str],
                work_dir: str | Path) -> Iterator[dict]:
    """Hold OUTPUT_DIR for this run; yield its record (host, pid, start, ...).

    Raises
    ------
    InputError
        When a live run that could collide with this one holds OUTPUT_DIR.
    """
    # Imported here: a rerun answered from its record (cli/rerun.py) reads RECORD_PREFIX only.
    from hermesflow.derivatives.writing import orphan_temp_files, write_json

    logs = Path(output_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    mine = {"host": socket.gethostname(), "pid": pid, "proc_start": _process_start(pid),
            "start": datetime.now().isoformat(timespec="microseconds"), "level": level,
            "participants": sorted(participants), "work_dir": str(work_dir)}
    path = logs / f"{RECORD_PREFIX}{mine['host']}-{pid}.json"
    with open(logs / ".lock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            others = 0
            for record_path in sorted(logs.glob(f"{RECORD_PREFIX}*.json")):
                record = _read(record_path)
                if record is None or not _alive(record):
                    LOGGER.info("removed the lock of a run that is gone: %s", record_path)
                    record_path.unlink(missing_ok=True)
                    continue
                if _collides(mine, record):
                    raise InputError(output_dir, _describe(record, record_path),
                                     "wait for it to end or stop it (a lock is broken only "
                                     "when its process is gone)")
                others += 1
            if not others:
                # Nobody else is writing: hidden temp files are a killed writer's leftovers.
                orphans = orphan_temp_files(output_dir)
                for orphan in orphans:
                    orphan.unlink(missing_ok=True)
                if orphans:
                    LOGGER.info("removed %d temporary file(s) of an interrupted run",
                                len(orphans))
            write_json(path, mine)
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)
    try:
        yield mine
    finally:
        path.unlink(missing_ok=True)


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
