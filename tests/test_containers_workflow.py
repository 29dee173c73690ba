"""The fMRIPrep interface and workflow factory without a container engine.

The engine here is ``none`` with a small shell script standing in for an ``fmriprep`` on PATH
(it writes empty files with fMRIPrep's names); real container runs are in
test_containers_podman.py.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from nipype.pipeline import engine as pe

from hermesflow.config import Config
from hermesflow.containers import FMRIPrepFailedError, FMRIPrepOptions
from hermesflow.interfaces.fmriprep import FMRIPrep
from hermesflow.preproc.fmriprep import FMRIPrepOutputError, run_fmriprep_participant
from hermesflow.workflows.fmriprep import (
    _same_folder,
    fmriprep_output_dir,
    init_fmriprep_wf,
)

FAKE_FMRIPREP = r"""#!/bin/bash
# Writes empty files named as fMRIPrep names them, for sessions in $FAKE_SESSIONS.
out=$2; shift 3; label=""
while [ $# -gt 0 ]; do
  [ "$1" = --participant-label ] && label=$2
  shift
done
echo "fake fmriprep for sub-$label"
[ -n "${FAKE_FAIL:-}" ] && { echo "boom: $FAKE_FAIL" >&2; exit 2; }
case " ${FAKE_FAIL_LABELS:-} " in *" $label "*) echo "crash for sub-$label" >&2; exit 1;; esac
echo run >>"$out/runs-$label"
for ses in $FAKE_SESSIONS; do
  d="$out/sub-$label/ses-$ses"; p="sub-${label}_ses-${ses}_task-passivewrist"
  mkdir -p "$d/func" "$d/anat"
  : >"$d/func/${p}_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"
  : >"$d/func/${p}_space-MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz"
  [ "$ses" = "${FAKE_SKIP_CONFOUNDS:-}" ] || : >"$d/func/${p}_desc-confounds_timeseries.tsv"
done
"""


@pytest.fixture
def setup(tmp_path, monkeypatch):
    bids = tmp_path / "bids"
    (bids / "sub-01").mkdir(parents=True)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "x"}))
    (bids / "sub-01" / "anything.txt").write_text("input")
    fake = tmp_path / "bin" / "fmriprep"
    fake.parent.mkdir()
    fake.write_text(FAKE_FMRIPREP)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    licence = tmp_path / "license.txt"
    licence.write_text("x")
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SESSIONS", "01 06")
    return {"bids_dir": bids, "output_dir": tmp_path / "fmriprep", "work_dir": tmp_path / "w",
            "participant_label": "sub-01", "engine": "none", "fs_license_file": licence,
            "sessions": ["01", "06"], "options": FMRIPrepOptions(task="passivewrist")}


def test_run_then_skip_when_up_to_date(setup):
    first = run_fmriprep_participant(**setup)
    assert first.ran and first.sessions == ["01", "06"]
    assert Path(first.log_file).read_text().splitlines()[1] == "fake fmriprep for sub-01"
    stamp = json.loads((setup["output_dir"] / ".hermesflow" / "sub-01_fmriprep.json").read_text())
    assert stamp["sessions"] == ["01", "06"] and stamp["settings"]["options"]["task"] == "passivewrist"
    assert not run_fmriprep_participant(**setup).ran
    runs = setup["output_dir"] / "runs-01"
    assert runs.read_text().count("run") == 1
    # A changed input of this participant runs it again.
    (setup["bids_dir"] / "sub-01" / "anything.txt").write_text("input, edited")
    assert run_fmriprep_participant(**setup).ran
    assert runs.read_text().count("run") == 2
    # Thread and memory limits do not change what fMRIPrep writes: no rerun for them.
    assert not run_fmriprep_participant(
        **{**setup, "options": FMRIPrepOptions(task="passivewrist", nthreads=8, mem_mb=1)}).ran


def test_incomplete_outputs(setup, monkeypatch):
    monkeypatch.setenv("FAKE_SKIP_CONFOUNDS", "06")
    with pytest.raises(FMRIPrepOutputError, match=r"sub-01/ses-06/func/.*confounds") as caught:
        run_fmriprep_participant(**setup)
    assert "ses-01" not in str(caught.value)
    assert "fmriprep.log" in str(caught.value)


def test_failure(setup, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "no T1w found")
    with pytest.raises(FMRIPrepFailedError, match="boom: no T1w found"):
        run_fmriprep_participant(**setup)


def test_interface(setup, tmp_path):
    node = pe.Node(FMRIPrep(), name="fmriprep", base_dir=str(tmp_path / "nipype"))
    node.inputs.bids_dir = str(setup["bids_dir"])
    node.inputs.output_dir = str(setup["output_dir"])
    node.inputs.work_dir = str(setup["work_dir"])
    node.inputs.participant_label = "01"
    node.inputs.engine = "none"
    node.inputs.fs_license_file = str(setup["fs_license_file"])
    node.inputs.sessions = ["01", "06"]
    result = node.run()
    assert result.outputs.fmriprep_dir == str(setup["output_dir"])
    assert result.outputs.ran and result.outputs.sessions == ["01", "06"]
    assert Path(result.outputs.log_file).parent == Path(node.output_dir())
    assert (setup["work_dir"] / "sub-01").is_dir()  # one work folder per participant


def test_workflow_factory():
    config = Config()
    config.execution.bids_dir = "/data/bids"
    config.execution.output_dir = "/data/out"
    config.execution.work_dir = "/scratch/work"
    config.execution.nprocs = 4
    config.execution.mem_gb = 16
    config.containers.engine = "apptainer"
    config.containers.fmriprep_image = "/images/fmriprep-25.2.3.sif"
    config.containers.fs_license_file = "/home/me/license.txt"
    wf = init_fmriprep_wf(config=config, participants=["sub-01", "02"], bids_validated=True)
    assert {"inputnode", "outputnode", "fmriprep", "one_folder"} <= set(wf.list_node_names())
    node = wf.get_node("fmriprep")
    assert isinstance(node, pe.MapNode) and node.iterfield == ["participant_label"]
    assert node.inputs.participant_label == ["01", "02"]
    assert node._n_procs == 4 and node.mem_gb == 16
    inputs = node.inputs
    assert (inputs.nthreads, inputs.omp_nthreads, inputs.mem_mb) == (4, 3, 16384)
    assert inputs.output_dir == "/data/out/sourcedata/fmriprep"
    assert inputs.work_dir == "/scratch/work/fmriprep"
    assert inputs.engine == "apptainer" and inputs.bids_validated
    assert inputs.output_spaces == ["MNI152NLin2009cAsym:res-2"]
    assert wf.get_node("inputnode").inputs.bids_dir == "/data/bids"
    config.workflow.fmriprep_dir = "/data/fmriprep"
    assert fmriprep_output_dir(config) == Path("/data/fmriprep")
    # hermesflow validates unless told not to; only then may fMRIPrep skip its own check.
    config.execution.skip_bids_validation = False
    assert init_fmriprep_wf(config=config, participants=["01"]).get_node(
        "fmriprep").inputs.bids_validated
    config.execution.skip_bids_validation = True
    single = init_fmriprep_wf(config=config, participants=None)
    assert not single.get_node("fmriprep").inputs.bids_validated
    assert not isinstance(single.get_node("fmriprep"), pe.MapNode)


def test_workflow_rejects_bad_labels():
    from hermesflow.errors import ConfigError

    with pytest.raises(ConfigError):
        init_fmriprep_wf(config=Config(), participants=["01;rm -rf ~"])


def test_same_folder():
    assert _same_folder(["/a", "/a"]) == "/a"
    with pytest.raises(ValueError):
        _same_folder(["/a", "/b"])


def _mark_session(fmriprep_dir, subject, session, marks):
    from pathlib import Path

    from hermesflow.preproc.collect import missing_outputs

    assert not missing_outputs(fmriprep_dir, subject, session, "passivewrist",
                               "MNI152NLin2009cAsym")
    (Path(marks) / f"{subject}_{session}").touch()
    return session


def test_one_branch_per_participant(tmp_path, monkeypatch):
    """participants=None under a subject iterable: one failing participant stops only itself.

    This is the shape the participant-level graph can use: subject iterable -> fMRIPrep ->
    session iterable (``itersource``) -> the session pipeline.
    """
    from nipype.interfaces.utility import Function, IdentityInterface

    bids = tmp_path / "bids"
    (bids).mkdir()
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "x", "BIDSVersion": "1.9.0"}))
    sessions = {"01": ["01", "06"], "02": ["01", "06"]}
    for sub, labels in sessions.items():
        for ses in labels:
            func = bids / f"sub-{sub}" / f"ses-{ses}" / "func"
            func.mkdir(parents=True)
            (func / f"sub-{sub}_ses-{ses}_task-passivewrist_bold.nii.gz").touch()
    fake = tmp_path / "bin" / "fmriprep"
    fake.parent.mkdir()
    fake.write_text(FAKE_FMRIPREP)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "license.txt").write_text("x")
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SESSIONS", "01 06")
    monkeypatch.setenv("FAKE_FAIL_LABELS", "02")
    marks = tmp_path / "marks"
    marks.mkdir()

    config = Config()
    config.execution.bids_dir = str(bids)
    config.execution.output_dir = str(tmp_path / "out")
    config.execution.work_dir = str(tmp_path / "work")
    config.containers.engine = "none"
    config.containers.fs_license_file = str(tmp_path / "license.txt")

    wf = pe.Workflow(name="participant_wf", base_dir=str(tmp_path / "work"))
    wf.config["execution"]["crashdump_dir"] = str(tmp_path / "crash")
    subjectsource = pe.Node(IdentityInterface(fields=["subject"]), name="subjectsource")
    subjectsource.iterables = ("subject", sorted(sessions))
    sessionsource = pe.Node(IdentityInterface(fields=["subject", "session"]),
                            name="sessionsource")
    sessionsource.itersource = ("subjectsource", "subject")
    sessionsource.iterables = [("session", sessions)]
    fmriprep_wf = init_fmriprep_wf(config=config, participants=None)
    collect = pe.Node(Function(input_names=["fmriprep_dir", "subject", "session", "marks"],
                               output_names=["session"], function=_mark_session),
                      name="collect")
    collect.inputs.marks = str(marks)
    wf.connect([
        (subjectsource, fmriprep_wf, [("subject", "inputnode.participant_label")]),
        (subjectsource, sessionsource, [("subject", "subject")]),
        (sessionsource, collect, [("subject", "subject"), ("session", "session")]),
        (fmriprep_wf, collect, [("outputnode.fmriprep_dir", "fmriprep_dir")]),
    ])
    # Linear runs every node it can, then raises the failure it met.
    with pytest.raises(Exception, match="crash for sub-02"):
        wf.run(plugin="Linear")
    assert sorted(p.name for p in marks.iterdir()) == ["01_01", "01_06"]
    assert [p.name for p in (tmp_path / "out" / "sourcedata" / "fmriprep").glob("sub-*")] == [
        "sub-01"]
