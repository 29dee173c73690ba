"""Cheap reruns: the record of a complete participant run, the validator's record, and the
one node per session and atlas (ROI measures and page) whose page never holds back the table."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from nipype.utils.filemanip import loadpkl

from hermesflow.bids import validate as validator
from hermesflow.cli.rerun import forget_record, unchanged_since, write_record
from hermesflow.cli.run import main
from hermesflow.config import Config
from hermesflow.derivatives.html import cell
from hermesflow.interfaces.bids import SessionSink
from hermesflow.interfaces.roi import ROIMeasures

# --- the record of a complete participant run ---------------------------------------------------


def _finished_run(root: Path) -> tuple[Config, Path]:
    """A BIDS tree, outputs, a work folder and an atlas file, recorded as a complete run."""
    for path, text in (("bids/dataset_description.json", "{}"),
                       ("bids/sub-01/ses-01/func/sub-01_ses-01_bold.nii.gz", "bold"),
                       ("bids/derivatives/fmriprep/sub-01/prep.nii.gz", "prep"),
                       ("out/sub-01/ses-01/func/table_roimeasures.tsv", "value\n1\n"),
                       ("out/index.html", "<html>"), ("atlas/hand.nii.gz", "labels")):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    config = Config()
    config.execution.bids_dir = str(root / "bids")
    config.execution.output_dir = str(root / "out")
    config.execution.work_dir = str(root / "work")
    config.workflow.fmriprep_dir = str(root / "bids/derivatives/fmriprep")
    atlas = root / "atlas/hand.nii.gz"
    write_record(config, start="2026-01-01T00:00:00", files=[atlas])
    return config, atlas


def _later(path: Path) -> None:
    """Same bytes, a later modification time (what an editor's save or ``touch`` does)."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def test_nothing_changed_is_answered_from_the_record(tmp_path):
    config, _ = _finished_run(tmp_path)
    assert unchanged_since(config) == "2026-01-01T00:00:00"
    # Neither verbosity nor what other runs rewrite (group folder, logs, index) count.
    config.execution.verbose = 2
    (tmp_path / "out/group").mkdir()
    (tmp_path / "out/group/long.tsv").write_text("x")
    (tmp_path / "out/logs").mkdir()
    (tmp_path / "out/logs/crash.txt").write_text("x")
    _later(tmp_path / "out/index.html")
    assert unchanged_since(config) == "2026-01-01T00:00:00"
    forget_record(config)
    assert unchanged_since(config) is None, "a run that starts removes the record"


@pytest.mark.parametrize("change", [
    "touched input", "new input", "preprocessed input", "deleted output", "edited output",
    "setting", "atlas edited", "another run holds the outputs", "other working directory",
])
def test_any_change_means_a_normal_run(tmp_path, monkeypatch, change):
    config, atlas = _finished_run(tmp_path)
    bold = tmp_path / "bids/sub-01/ses-01/func/sub-01_ses-01_bold.nii.gz"
    table = tmp_path / "out/sub-01/ses-01/func/table_roimeasures.tsv"
    if change == "touched input":
        _later(bold)
    elif change == "new input":
        (bold.parent / "sub-01_ses-01_events.tsv").write_text("onset")
    elif change == "preprocessed input":
        (tmp_path / "bids/derivatives/fmriprep/sub-01/prep.nii.gz").write_text("prep2")
    elif change == "deleted output":
        table.unlink()
    elif change == "edited output":
        table.write_text("value\n2\n")
    elif change == "setting":
        config.workflow.rois = ["mi4p"]
    elif change == "atlas edited":
        _later(atlas)
    elif change == "another run holds the outputs":
        (tmp_path / "out/logs").mkdir()
        (tmp_path / "out/logs/.run-host-123.json").write_text("{}")
    else:
        monkeypatch.chdir(tmp_path / "out")
    assert unchanged_since(config) is None, change


def test_a_finished_trial_rerun_writes_nothing_and_a_lost_output_comes_back(effect_trial,
                                                                            tmp_path, caplog):
    work, out = tmp_path / "work", tmp_path / "out"
    shutil.copytree(effect_trial.work, work)  # keeps mtimes: the cache stays valid
    shutil.copytree(effect_trial.out, out)
    argv = [str(effect_trial.bids), str(out), "participant", "-w", str(work),
            "--skip-bids-validation", "--nprocs", "2"]
    assert main(argv) == 0  # other folders than the fixture's: a normal (cached) run
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    caplog.clear()
    assert main(argv) == 0
    assert any("unchanged since the complete run" in r.getMessage() for r in caplog.records)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*")
            if p.is_file()} == files, "not one output rewritten"
    table = next(out.rglob("*_atlas-juelich_*_roimeasures.tsv"))
    content = table.read_bytes()
    table.unlink()
    assert main(argv) == 0
    assert table.read_bytes() == content, "the lost table is written again, the same"


# --- the validator's record ---------------------------------------------------------------------


def test_the_validator_reruns_only_when_the_dataset_listing_changes(tmp_path, monkeypatch):
    dataset = tmp_path / "bids"
    (dataset / "sub-01").mkdir(parents=True)
    (dataset / "sub-01/sub-01_sessions.tsv").write_text("session_id\n")
    found = [validator.Issue("error", "EMPTY_FILE", "/sub-01/sub-01_sessions.tsv", "m", "d.")]
    calls = []
    monkeypatch.setattr(validator, "validate", lambda path: calls.append(path) or found)
    record = tmp_path / "work/validator.json"
    assert validator.validate_once(dataset, record) == found
    assert validator.validate_once(dataset, record) == found, "the issues as recorded"
    assert len(calls) == 1
    _later(dataset / "sub-01/sub-01_sessions.tsv")
    findings = validator.check_dataset(dataset, record=record)
    assert len(calls) == 2
    assert findings.errors == {("01", None): found}
    assert not any(dataset.rglob("*.json")), "the dataset is never written"


# --- one node per session and atlas -------------------------------------------------------------


@pytest.fixture()
def roi_inputs(effect_trial) -> dict:
    """The inputs one session's ROI node of the effect trial ran with (maps, masks, figures)."""
    found = sorted(effect_trial.work.rglob("_atlas_juelich*/roi/_inputs.pklz"))
    return loadpkl(found[0])


def test_the_roi_node_draws_the_atlas_page_from_its_table(roi_inputs, tmp_path):
    result = ROIMeasures(**roi_inputs).run(cwd=str(tmp_path))
    outputs = result.outputs
    assert outputs.report_error == ""
    page = Path(outputs.report).read_text()
    table = pd.read_csv(outputs.table, sep="\t")
    assert f"sub-{roi_inputs['subject']} ses-{roi_inputs['session']}" in page
    assert Path(roi_inputs["figures"]).read_text() in page, "the session's cached figures"
    # The page's ROI table shows this node's numbers.
    psc = table[(table["measure"] == "psc") & (table["roi"] == "mi4p")]["value"]
    assert len(psc) == 2 and all(cell(v, 3) in page for v in psc)


def test_a_page_that_fails_leaves_the_table_written_and_is_drawn_again(roi_inputs, tmp_path,
                                                                      monkeypatch):
    from hermesflow.interfaces import report

    def broken(*args, **kwargs):
        raise ValueError("no room for the page")

    monkeypatch.setattr(report, "draw_atlas_page", broken)
    node_dir = tmp_path / "roi"
    node_dir.mkdir()
    outputs = ROIMeasures(**roi_inputs).run(cwd=str(node_dir)).outputs
    assert outputs.report == ""
    assert outputs.report_error == "ValueError: no room for the page"
    (node_dir / "_0x0123.json").write_text("{}")  # the node's cache entry, as Nipype keeps it
    out, sink_dir = tmp_path / "out", tmp_path / "sink"
    sink_dir.mkdir()
    sink = SessionSink(output_dir=str(out), subject=roi_inputs["subject"],
                       session=roi_inputs["session"], task="passivewrist",
                       space="MNI152NLin2009cAsym", atlas="juelich", maps={},
                       roi_table=outputs.table, roi_sidecar=outputs.sidecar,
                       report=outputs.report, report_error=outputs.report_error)
    with pytest.raises(RuntimeError, match=r"report page not drawn \(ValueError: no room for "
                                           r"the page\); the ROI table is written"):
        sink.run(cwd=str(sink_dir))
    (written,) = out.rglob("*_roimeasures.tsv")
    assert pd.read_csv(written, sep="\t")["value"].tolist() == pd.read_csv(
        outputs.table, sep="\t")["value"].tolist()
    assert not list(out.rglob("*_report.html"))
    assert not list(node_dir.glob("_0x*.json")), "the ROI node runs again next time"


# --- the atlases checked up front ---------------------------------------------------------------


def test_an_atlas_checked_before_is_not_opened_again_until_it_changes(tmp_path, monkeypatch):
    import nibabel as nib
    import numpy as np

    from hermesflow.cli.selection import remember_atlases, set_atlases
    from hermesflow.errors import InputError
    from hermesflow.roi import atlases

    labels = np.zeros((8, 8, 8), np.int16)
    labels[1, 1, 1], labels[6, 1, 1] = 1, 2
    image = tmp_path / "hands.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.eye(4)), image)
    pd.DataFrame({"index": [1, 2], "name": ["hand_L", "hand_R"]}).to_csv(
        tmp_path / "hands.tsv", sep="\t", index=False)
    opened = []
    real = atlases.load_atlas
    monkeypatch.setattr(atlases, "load_atlas",
                        lambda spec, rois=None, space=None: opened.append(spec) or real(
                            spec, rois, space))
    config = Config()
    config.execution.work_dir = str(tmp_path / "work")
    config.workflow.atlas = str(image)
    for _ in range(2):
        remember_atlases(config, set_atlases(config))
    assert opened == [str(image)], "checked once"
    _later(image)
    remember_atlases(config, set_atlases(config))
    assert len(opened) == 2, "an edited atlas is checked again"
    config.workflow.rois = ["elbow"]
    with pytest.raises(InputError, match="elbow"):
        set_atlases(config)
