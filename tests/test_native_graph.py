"""The native preprocessing graph: one cached Nipype node per step, resumable after a crash.

One 6 mm session of 12 volumes is simulated; the graph is run three times in the same work
folder: with ``t1w2mni`` failing on purpose, then without, then with another T1w -> MNI model.
Nipype's own result files (``result_<node>.pklz``) tell which nodes ran each time.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nipype.utils.filemanip import loadpkl

pytest.importorskip("ants")

from hermesflow.config import Config  # noqa: E402
from hermesflow.preproc.confounds import MOTION_COLUMNS  # noqa: E402
from hermesflow.simulation.trial import simulate_trial  # noqa: E402
from hermesflow.workflows.native import init_native_preproc_wf  # noqa: E402

TASK = "passivewrist"
STEPS = ("inputs", "brain", "motion", "bold2t1w", "t1w2mni", "apply", "confounds", "write")


def _config(root: Path, fail_nodes: tuple[str, ...] = ()) -> Config:
    config = Config()
    config.execution.bids_dir = str(root / "bids")
    config.execution.output_dir = str(root / "out")
    config.execution.work_dir = str(root / "work")
    config.workflow.preproc = "native"
    config.nipype.fail_nodes = list(fail_nodes)
    return config


def test_native_preproc_wf_doors(tmp_path):
    config = _config(tmp_path, fail_nodes=("apply",))
    workflow = init_native_preproc_wf(config=config, transform="SyN")
    assert set(workflow.list_node_names()) == {"inputnode", "outputnode", *STEPS}
    assert set(workflow.get_node("inputnode").inputs.copyable_trait_names()) == {
        "subject", "session"}
    assert "fmriprep_dir" in workflow.get_node("outputnode").outputs.copyable_trait_names()
    write = workflow.get_node("write")
    assert write.inputs.fmriprep_dir == str(tmp_path / "out" / "sourcedata" /
                                            "hermesflow-native")
    assert write.inputs.task == workflow.get_node("inputs").inputs.task == config.workflow.task
    assert workflow.get_node("t1w2mni").inputs.transform == "SyN"
    # Only the listed node is told to fail; the others keep the hash of a normal run.
    assert workflow.get_node("apply").inputs.fail_on_purpose == "apply"
    assert not any(workflow.get_node(n).inputs.trait_get().get("fail_on_purpose")
                   for n in STEPS if n != "apply")
    # The T1w -> MNI model reaches apply and what follows, never the motion estimate.
    graph = workflow._graph
    from networkx import ancestors, descendants

    by_name = {node.name: node for node in graph.nodes}
    assert {n.name for n in descendants(graph, by_name["t1w2mni"])} == {
        "apply", "confounds", "write", "outputnode"}
    assert "motion" not in {n.name for n in ancestors(graph, by_name["t1w2mni"])}


def test_participant_wf_wires_the_native_steps(tmp_path):
    from hermesflow.workflows.base import init_participant_wf

    workflow = init_participant_wf(config=_config(tmp_path), pairs=[("01", "01")])
    names = {node.fullname for node in workflow._create_flat_graph().nodes}
    assert {f"hermesflow_participant_wf.native_preproc_wf.{n}" for n in STEPS} <= names


def _run(root: Path, name_suffix: str, fail_nodes: tuple[str, ...] = (), **options) -> None:
    """One run of the graph in ``root/work`` (Linear: nodes in a fixed order, no pool)."""
    workflow = init_native_preproc_wf(config=_config(root, fail_nodes), **options)
    workflow.base_dir = str(root / "work")
    workflow.inputs.inputnode.subject = "sub-01"
    workflow.inputs.inputnode.session = "01"
    workflow.config["execution"].update({
        "crashdump_dir": str(root / f"crash{name_suffix}"), "crashfile_format": "txt",
        "remove_unnecessary_outputs": False, "create_report": False})
    workflow.run(plugin="Linear")


def _ran(root: Path) -> dict[str, tuple[str, bool]]:
    """Node -> (start time, finished) from Nipype's result files (absent: never started)."""
    base = root / "work" / "native_preproc_wf"
    runs = {}
    for step in STEPS:
        result_file = base / step / f"result_{step}.pklz"
        if result_file.exists():
            result = loadpkl(result_file)
            # Nipype keeps a result file for a crashed node too, without outputs.
            runs[step] = (result.runtime.startTime, result.outputs is not None)
    return runs


def test_crash_resume_and_changed_transform_rerun_only_what_depends(tmp_path):
    simulate_trial(tmp_path / "bids", participants=1, sessions=(1,), voxel_size=6.0,
                   n_blocks=1, block_s=12.0, seed=4)

    with pytest.raises(RuntimeError):
        _run(tmp_path, "1", fail_nodes=("t1w2mni",))
    first = _ran(tmp_path)
    # Everything that does not need the T1w -> MNI transforms ran; the listed node crashed,
    # and nothing after it started.
    assert {step for step, (_, done) in first.items() if done} == {"inputs", "brain", "motion",
                                                                   "bold2t1w"}
    assert set(first) == {"inputs", "brain", "motion", "bold2t1w", "t1w2mni"}
    failed = loadpkl(tmp_path / "work" / "native_preproc_wf" / "t1w2mni" / "result_t1w2mni.pklz")
    assert "failed on purpose" in failed.runtime.traceback
    assert list((tmp_path / "crash1").glob("crash-*t1w2mni*"))
    assert not (tmp_path / "out").exists()

    _run(tmp_path, "2")
    second = _ran(tmp_path)
    assert all(done for _, done in second.values()) and set(second) == set(STEPS)
    # Resumed: the per-volume registrations were not repeated, the failed node ran.
    assert second["motion"] == first["motion"]
    assert second["bold2t1w"] == first["bold2t1w"] and second["brain"] == first["brain"]
    assert second["t1w2mni"][0] > first["t1w2mni"][0]
    native = tmp_path / "out" / "sourcedata" / "hermesflow-native" / "sub-01" / "ses-01"
    confounds = pd.read_csv(native / "func" / f"sub-01_ses-01_task-{TASK}"
                            "_desc-confounds_timeseries.tsv", sep="\t", na_values="n/a")
    motion = pd.read_csv(tmp_path / "work" / "native_preproc_wf" / "motion"
                         / "motion_params.tsv", sep="\t")
    assert len(confounds) == 12
    np.testing.assert_allclose(confounds[list(MOTION_COLUMNS)], motion[list(MOTION_COLUMNS)])
    # Simulated motion is a few tenths of a mm: estimated, not zero.
    assert 0.02 < confounds["trans_x"].std() < 1.0
    bold = native / "func" / (f"sub-01_ses-01_task-{TASK}_space-MNI152NLin2009cAsym"
                              "_desc-preproc_bold.nii.gz")
    affine_bold = np.asarray(nib.load(str(bold)).dataobj)

    _run(tmp_path, "3", transform="Rigid")
    third = _ran(tmp_path)
    assert third["motion"] == first["motion"] and third["bold2t1w"] == first["bold2t1w"]
    assert third["brain"] == first["brain"]
    for step in ("t1w2mni", "apply", "confounds", "write"):
        assert third[step][0] > second[step][0], step
    # The new model reached the one-shot resampling, and so the written BOLD.
    apply = loadpkl(tmp_path / "work" / "native_preproc_wf" / "apply" / "result_apply.pklz")
    assert [Path(f).name for f in apply.inputs["normalisation"]] == [
        "t1w2mni_rigid_0GenericAffine.mat"]
    rigid_bold = np.asarray(nib.load(str(bold)).dataobj)
    assert rigid_bold.shape == affine_bold.shape
    assert np.abs(rigid_bold - affine_bold).max() > 0
