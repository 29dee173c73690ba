"""kill -9 of the whole process group at seeded moments, then a rerun: the outputs are
byte-identical to an uninterrupted run's and no temporary file is left (issue 13)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hermesflow.derivatives.writing import orphan_temp_files
from hermesflow.simulation.trial import simulate_trial

SPEC = {"participants": 2, "sessions": (1, 6), "voxel_size": 6.0, "n_blocks": 3, "seed": 5}
SEED = 13
N_MOMENTS = 3
# Files that record the run itself (times, hosts, pids), not the results.
VOLATILE = ("_manifest.json", "index.html")


def _command(bids: Path, out: Path, work: Path) -> list[str]:
    return [sys.executable, "-m", "hermesflow.cli.run", str(bids), str(out), "participant",
            "-w", str(work), "--skip-bids-validation", "--nprocs", "2"]


def _digests(out: Path, work: Path) -> dict[str, str]:
    found = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if not path.is_file() or relative.parts[0] == "logs" or path.name.endswith(VOLATILE):
            continue
        data = path.read_bytes()
        if path.name == "hermesflow_config.toml":  # records the run's own two folders
            data = data.replace(str(out).encode(), b"OUT").replace(str(work).encode(), b"WORK")
        found[str(relative)] = hashlib.sha256(data).hexdigest()
    return found


def _run(command: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.monotonic() - start


@pytest.mark.slow
def test_kill_then_rerun_is_byte_identical(tmp_path):
    bids = simulate_trial(tmp_path / "bids", **SPEC)
    duration = _run(_command(bids, tmp_path / "out_a", tmp_path / "work_a"))
    reference = _digests(tmp_path / "out_a", tmp_path / "work_a")
    assert reference
    # One seeded moment in each third of 10-90 % of the uninterrupted run's duration.
    rng = random.Random(SEED)
    moments = [0.1 + 0.8 * (i + rng.random()) / N_MOMENTS for i in range(N_MOMENTS)]
    for i, fraction in enumerate(moments):
        out, work = tmp_path / f"out_{i}", tmp_path / f"work_{i}"
        command = _command(bids, out, work)
        child = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        time.sleep(fraction * duration)
        os.killpg(os.getpgid(child.pid), signal.SIGKILL)
        child.wait()
        _run(command)
        assert _digests(out, work) == reference, f"rerun after kill at {fraction:.2f} x run time"
        assert not orphan_temp_files(out), f"temp files left after kill at {fraction:.2f}"
