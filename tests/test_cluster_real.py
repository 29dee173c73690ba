"""Real SLURM: a 3-participant trial through `hermesflow cluster submit`, status and resume.

Needs a running controller (``.ci/setup-slurm.sh`` starts a single-node one); skipped, with
the reason, when ``sbatch`` is missing or the controller does not answer.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hermesflow.cli.run import main
from hermesflow.cluster.states import ACTIVE, StatusReport, status
from hermesflow.simulation.trial import simulate_trial


def _controller_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch not found (install and start SLURM with .ci/setup-slurm.sh)"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                              timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"SLURM controller does not answer: {err}"
    if done.returncode != 0:
        return f"SLURM controller does not answer: {' '.join(done.stderr.split())}"
    return None


pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module", autouse=True)
def _needs_slurm() -> None:
    # Asked here, not at import: a silent controller costs seconds, even when deselected.
    problem = _controller_problem()
    if problem:
        pytest.skip(problem)

WAIT = 240  # s, per round: 3 tasks on 2 shared cores, next to the rest of the suite
OPTIONS = ["--cpus", "1", "--mem-gb", "1.5", "--time", "00:10:00"]


def wait_until_finished(out: Path, timeout: float = WAIT) -> StatusReport:
    deadline = time.monotonic() + timeout
    while True:
        report = status(out)
        if report.finished:
            return report
        if time.monotonic() > deadline:
            pytest.fail(f"SLURM jobs not finished after {timeout:.0f} s: "
                        f"{[(t.label, t.state) for t in report.tasks]}, group "
                        f"{report.group.state}; logs in {out / 'logs' / 'slurm'}")
        time.sleep(2)


def roi_tables(out: Path, label: str) -> list[Path]:
    return sorted((out / f"sub-{label}").glob("ses-*/func/*_roimeasures.tsv"))


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slurm_trial")
    simulate_trial(root / "bids", participants=3, sessions=(1, 6), voxel_size=8.0, n_blocks=3,
                   seed=1)
    return root


def test_array_then_group_all_completed(trial):
    out, work = trial / "out_ok", trial / "work_ok"
    start = time.monotonic()
    assert main(["cluster", "submit", str(trial / "bids"), str(out), "-w", str(work), *OPTIONS,
                 "--", "--skip-bids-validation"]) == 0
    report = wait_until_finished(out)
    print(f"all finished in {time.monotonic() - start:.0f} s: "
          f"{[(t.label, t.state, t.elapsed, t.source) for t in report.tasks]} "
          f"group {report.group.state} {report.group.elapsed}")
    assert [t.state for t in report.tasks] == ["COMPLETED"] * 3
    assert [t.exit_code for t in report.tasks] == ["0:0"] * 3
    assert report.group.state == "COMPLETED"
    for label in ("01", "02", "03"):
        assert len(roi_tables(out, label)) == 2, f"sub-{label} has no ROI tables"
        assert (work / label).is_dir()
    group_table = out / "group" / "task-passivewrist_atlas-juelich_desc-long.tsv"
    assert group_table.exists()
    # afterany: the group level ran once every participant had written its tables.
    newest_roi = max(p.stat().st_mtime for label in ("01", "02", "03")
                     for p in roi_tables(out, label))
    assert group_table.stat().st_mtime >= newest_roi
    assert main(["cluster", "status", str(out)]) == 0


def test_failed_task_is_reported_and_resumed_alone(trial, capsys):
    out, work = trial / "out_fail", trial / "work_fail"
    fmriprep = trial / "fmriprep_copy"
    shutil.copytree(trial / "bids" / "derivatives" / "fmriprep", fmriprep)
    confounds = sorted((fmriprep / "sub-02").glob("ses-*/func/*desc-confounds_timeseries.tsv"))
    assert confounds
    saved = {path: path.read_bytes() for path in confounds}
    for path in confounds:
        path.unlink()

    start = time.monotonic()
    assert main(["cluster", "submit", str(trial / "bids"), str(out), "-w", str(work), *OPTIONS,
                 "--", "--skip-bids-validation", "--fmriprep-dir", str(fmriprep)]) == 0
    report = wait_until_finished(out)
    notes = []  # printed at the end: capsys reads the CLI's output in between
    notes.append(f"first round finished in {time.monotonic() - start:.0f} s: "
          f"{[(t.label, t.state, t.exit_code) for t in report.tasks]} group "
          f"{report.group.state}")
    states = {t.label: (t.state, t.exit_code) for t in report.tasks}
    assert states["01"] == states["03"] == ("COMPLETED", "0:0")
    # sub-02 has no usable session at all: its task exits 2 (nothing could run), and SLURM's
    # accounting reports that exit code.
    assert states["02"] == ("FAILED", "2:0")
    assert report.to_resubmit() == [1]
    assert main(["cluster", "status", str(out)]) == 1
    assert "FAILED" in capsys.readouterr().out

    for path, data in saved.items():
        path.write_bytes(data)
    first_array = report.tasks[0].array_job
    assert main(["cluster", "resume", str(out)]) == 0
    assert "Resubmitted task(s) 1 as array job" in capsys.readouterr().out
    start = time.monotonic()
    report = wait_until_finished(out)
    notes.append(f"resumed round finished in {time.monotonic() - start:.0f} s: "
          f"{[(t.label, t.array_job, t.state) for t in report.tasks]} group "
          f"{report.group.state}")
    assert [t.state for t in report.tasks] == ["COMPLETED"] * 3
    # Only the failed index ran again.
    assert [t.array_job == first_array for t in report.tasks] == [True, False, True]
    assert report.group.state == "COMPLETED"
    assert len(roi_tables(out, "02")) == 2
    assert (out / "group" / "task-passivewrist_atlas-juelich_desc-long.tsv").exists()
    assert not any(t.state in ACTIVE for t in report.tasks)
    assert main(["cluster", "resume", str(out)]) == 0
    assert "Nothing to resume" in capsys.readouterr().out
    print("\n".join(notes))
