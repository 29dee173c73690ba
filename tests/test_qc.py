"""Motion QC of a session, exclusion of failed sessions from the models, progress lines."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from hermesflow.cli.progress import Callbacks, Progress
from hermesflow.group.qc import exclude_failed_sessions
from hermesflow.preproc.confounds import confounds_table
from hermesflow.preproc.qc import motion_qc

LIMITS = {"fd_threshold": 0.5, "max_mean_fd": 0.5, "max_fraction_above": 0.2}


def _confounds(tmp_path, scale: float, name: str = "confounds.tsv", dummy: int = 0):
    rng = np.random.default_rng(3)
    steps = rng.normal(0, 1, (100, 6)) * np.array([0.03] * 3 + [0.0006] * 3)
    table = confounds_table(np.cumsum(steps, axis=0) * scale, rng.normal(size=100))
    for i in range(dummy):
        column = np.zeros(100)
        column[i] = 1
        table[f"non_steady_state_outlier{i:02d}"] = column
    path = tmp_path / name
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    return path, table["framewise_displacement"].to_numpy()


def test_still_session_passes_with_the_numbers_of_its_fd(tmp_path):
    path, fd = _confounds(tmp_path, scale=1.0)
    qc = motion_qc(path, **LIMITS)
    assert qc.status == "pass" and qc.reason == ""
    assert qc.mean_fd == pytest.approx(np.nanmean(fd))
    assert qc.max_fd == pytest.approx(np.nanmax(fd))
    assert qc.fraction_above == pytest.approx(np.mean(fd[1:] > 0.5))
    assert qc.mean_fd < 0.3


def test_large_motion_fails_and_says_why(tmp_path):
    path, fd = _confounds(tmp_path, scale=6.0)
    qc = motion_qc(path, **LIMITS)
    assert qc.status == "fail"
    assert f"mean FD {np.nanmean(fd):.2f} mm > 0.5 mm" in qc.reason
    assert "of volumes with FD > 0.5 mm (limit 20%)" in qc.reason
    # Stricter or looser limits change the verdict: the limits are read, not fixed.
    assert motion_qc(path, fd_threshold=5.0, max_mean_fd=5.0,
                     max_fraction_above=0.2).status == "pass"


def test_dummy_scans_are_left_out_of_the_summary(tmp_path):
    path, fd = _confounds(tmp_path, scale=1.0, dummy=3)
    qc = motion_qc(path, **LIMITS)
    assert qc.n_dummy == 3
    assert qc.mean_fd == pytest.approx(np.mean(fd[3:]))


def test_exclusion_drops_the_failed_sessions_imaging_only():
    long = pd.DataFrame({
        "participant_id": ["sub-01"] * 4 + ["sub-02"] * 2,
        "session_id": ["ses-01", "ses-01", "ses-06", "ses-06", "ses-01", "ses-01"],
        "outcome": ["mi4a_ipsi_psc", "fm_motor"] * 3,
        "value": np.arange(6.0),
    })
    qc = pd.DataFrame({"participant_id": ["sub-01", "sub-01", "sub-02"],
                       "session_id": ["ses-01", "ses-06", "ses-01"],
                       "qc_status": ["pass", "fail", "pass"],
                       "qc_reason": ["", "mean FD 0.80 mm > 0.5 mm", ""]})
    kept, recorded = exclude_failed_sessions(long, qc, ["fm_motor"], exclude=True)
    assert len(kept) == 5
    dropped = long.merge(kept, how="left", indicator=True).query("_merge == 'left_only'")
    assert dropped[["session_id", "outcome"]].values.tolist() == [["ses-06", "mi4a_ipsi_psc"]]
    assert recorded["excluded"].tolist() == ["no", "yes", "no"]
    same, flagged = exclude_failed_sessions(long, qc, ["fm_motor"], exclude=False)
    assert len(same) == 6 and flagged["excluded"].tolist() == ["no"] * 3


def test_progress_prints_one_line_per_finished_node_with_an_estimate():
    node = pe.Node(niu.IdentityInterface(fields=["x"]), name="glm")
    node.parameterization = ["_subject_02", "_session_06"]
    times = iter([0.0, 10.0, 12.0, 20.0, 25.0])
    stream = io.StringIO()
    seen = []
    callback = Callbacks(lambda n, s: seen.append(s), Progress(total=4, stream=stream,
                                                                clock=lambda: next(times)))
    callback(node, "start")   # t=10
    callback(node, "end")     # t=12: took 2 s, 12 s elapsed, 3 left -> 36 s
    callback(node, "start")   # t=20
    callback(node, "exception")  # t=25
    lines = stream.getvalue().splitlines()
    assert lines == [
        "[1/4] sub-02 ses-06 glm: done in 2.0 s; elapsed 0:12, about 0:36 left",
        "[2/4] sub-02 ses-06 glm: FAILED in 5.0 s; elapsed 0:25, about 0:25 left",
    ]
    assert seen == ["start", "end", "start", "exception"]
