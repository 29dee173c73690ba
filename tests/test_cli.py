"""Command line: bad input gives one clear line, other sessions go on, input never modified."""

from __future__ import annotations

import hashlib
import shutil

import pandas as pd
import pytest

from hermesflow.cli.run import main
from hermesflow.simulation.trial import simulate_trial

SMALL = {"participants": 3, "sessions": (1, 6), "voxel_size": 8.0, "n_blocks": 3, "seed": 3}


def _tree_digest(root) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return simulate_trial(tmp_path_factory.mktemp("cli") / "bids", **SMALL)


def _last_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def test_unknown_participant_label_is_one_line(dataset, tmp_path, capsys):
    status = main([str(dataset), str(tmp_path / "out"), "participant",
                   "--participant-label", "99", "-w", str(tmp_path / "work"),
                   "--skip-bids-validation"])
    assert status == 2
    line = _last_error_line(capsys)
    assert str(dataset) in line and "unknown participant label(s) 99" in line
    assert "01, 02, 03" in line, "the error lists the labels that exist"


def test_missing_fmriprep_file_names_it_and_others_go_on(dataset, tmp_path, caplog):
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(dataset / "derivatives" / "fmriprep", fmriprep)
    broken = (fmriprep / "sub-02/ses-06/func"
              / "sub-02_ses-06_task-passivewrist_desc-confounds_timeseries.tsv")
    broken.unlink()
    before = _tree_digest(dataset)
    out = tmp_path / "out"
    status = main([str(dataset), str(out), "participant", "--fmriprep-dir", str(fmriprep),
                   "-w", str(tmp_path / "work")])
    assert status == 1
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == "ERROR" and r.name == "hermesflow"]
    assert len(errors) == 1
    assert "sub-02 ses-06" in errors[0] and "desc-confounds_timeseries.tsv" in errors[0]
    assert str(fmriprep / "sub-02" / "ses-06") in errors[0]
    tables = sorted(p.name.split("_task")[0] for p in out.rglob("*_roimeasures.tsv"))
    assert tables == ["sub-01_ses-01", "sub-01_ses-06", "sub-02_ses-01", "sub-03_ses-01",
                      "sub-03_ses-06"]
    assert _tree_digest(dataset) == before, "the input BIDS tree is never modified"
    # The group level runs on what exists and says how much it used.
    assert main([str(dataset), str(out), "group", "-w", str(tmp_path / "work")]) == 0
    models = pd.read_csv(next((out / "group").glob("*_desc-mixedlm.tsv")), sep="\t")
    fitted = models[(models["outcome"] == "mi4p_ipsi_psc") & (models["term"] == "Intercept")]
    assert set(fitted["n_observations"]) == {5}


def test_bad_events_file_fails_that_session_only(dataset, tmp_path, caplog):
    bids = tmp_path / "bids"
    shutil.copytree(dataset, bids, ignore=shutil.ignore_patterns("derivatives"))
    events = bids / "sub-01/ses-06/func/sub-01_ses-06_task-passivewrist_events.tsv"
    events.write_text("onset\tduration\ttrial_type\n10\t20\trest\n")
    status = main([str(bids), str(tmp_path / "out"), "participant", "--fmriprep-dir",
                   str(dataset / "derivatives" / "fmriprep"), "-w", str(tmp_path / "work"),
                   "--participant-label", "01", "--skip-bids-validation"])
    # (The validator would refuse 'rest' too, from the Levels in task-passivewrist_events.json;
    # skipping it exercises hermesflow's own check.)
    assert status == 1
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == "ERROR" and r.name == "hermesflow"]
    assert errors == [f"sub-01 ses-06: {events}: no 'move' blocks in trial_type -- label the "
                      "movement blocks 'move'"]
    assert len(list((tmp_path / "out").rglob("*_roimeasures.tsv"))) == 1


def test_invalid_bids_is_refused_before_anything_runs(dataset, tmp_path, capsys):
    bids = tmp_path / "bids"
    shutil.copytree(dataset, bids, ignore=shutil.ignore_patterns("derivatives"))
    (bids / "dataset_description.json").write_text("{}")
    status = main([str(bids), str(tmp_path / "out"), "participant", "--fmriprep-dir",
                   str(dataset / "derivatives" / "fmriprep"), "-w", str(tmp_path / "work")])
    assert status == 2
    assert "BIDS error(s)" in _last_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_output_inside_raw_dataset_is_refused(dataset, capsys):
    assert main([str(dataset), str(dataset / "out"), "participant"]) == 2
    assert "inside the raw dataset" in _last_error_line(capsys)


def test_group_without_participant_outputs(dataset, tmp_path, capsys):
    assert main([str(dataset), str(tmp_path / "empty"), "group"]) == 2
    assert "run the participant level first" in _last_error_line(capsys)


def test_bad_config_key(dataset, tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[workflow]\natlass = 'juelich'\n")
    assert main([str(dataset), str(tmp_path / "out"), "participant", "--config",
                 str(config)]) == 2
    line = _last_error_line(capsys)
    assert str(config) in line and "unknown key 'atlass'" in line


def test_corrupt_preprocessed_bold_is_reported_per_session(dataset, tmp_path, caplog):
    """A file that exists but cannot be read fails in the graph; the line names session + file."""
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(dataset / "derivatives" / "fmriprep", fmriprep)
    bold = next((fmriprep / "sub-03/ses-06/func").glob("*_desc-preproc_bold.nii.gz"))
    bold.write_bytes(bold.read_bytes()[:5000])
    out = tmp_path / "out"
    status = main([str(dataset), str(out), "participant", "--fmriprep-dir", str(fmriprep),
                   "-w", str(tmp_path / "work"), "--participant-label", "03",
                   "--skip-bids-validation"])
    assert status == 1
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == "ERROR" and r.name == "hermesflow"]
    assert len(errors) == 1
    assert errors[0].startswith(f"sub-03 ses-06 (glm): {bold}: cannot be read as NIfTI")
    assert "rerun the preprocessing of this session (details: " in errors[0]
    assert len(list(out.rglob("*_roimeasures.tsv"))) == 1, "ses-01 of sub-03 still finished"
