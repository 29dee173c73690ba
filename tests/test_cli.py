"""Command line: bad input gives one clear line, other sessions go on, input never modified."""

from __future__ import annotations

import hashlib
import logging
import shutil

import nibabel as nib
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


class _Errors(logging.Handler):
    """The hermesflow logger's ERROR lines (caplog is per test; the fixture below is not)."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def one_bad_session(dataset, tmp_path_factory):
    """Participant level of the small trial with sub-01 ses-06's preprocessed BOLD truncated."""
    root = tmp_path_factory.mktemp("bad_session")
    fmriprep = root / "fmriprep"
    shutil.copytree(dataset / "derivatives" / "fmriprep", fmriprep)
    bold = next((fmriprep / "sub-01/ses-06/func").glob("*_desc-preproc_bold.nii.gz"))
    bold.write_bytes(bold.read_bytes()[:5000])
    errors = _Errors()
    logging.getLogger("hermesflow").addHandler(errors)
    try:
        status = main([str(dataset), str(root / "out"), "participant", "--fmriprep-dir",
                       str(fmriprep), "-w", str(root / "work"), "--skip-bids-validation",
                       "--nprocs", "2"])
    finally:
        logging.getLogger("hermesflow").removeHandler(errors)
    return {"root": root, "out": root / "out", "bold": bold, "status": status,
            "errors": errors.lines}


def test_failure_in_the_graph_is_one_exact_line(one_bad_session):
    out, bold = one_bad_session["out"], one_bad_session["bold"]
    assert one_bad_session["status"] == 1
    (crash,) = (out / "logs").glob("crash-*")
    try:
        nib.load(bold).get_fdata()
    except Exception as err:  # the reader's own words, as the GLM quotes them
        reason = f"{type(err).__name__}: {err}"
    assert one_bad_session["errors"] == [
        f"sub-01 ses-06 (glm): {bold}: cannot be read as NIfTI ({reason}) -- rerun the "
        f"preprocessing of this session (details: {crash})"]
    tables = sorted(p.name.split("_task")[0] for p in out.rglob("*_roimeasures.tsv"))
    assert tables == ["sub-01_ses-01", "sub-02_ses-01", "sub-02_ses-06", "sub-03_ses-01",
                      "sub-03_ses-06"]


def test_a_failing_group_report_leaves_the_tables_written(dataset, one_bad_session, caplog):
    out, work = one_bad_session["out"], one_bad_session["root"] / "work"
    group = out / "group"
    # A folder where the report goes: its sink fails, the tables' sink must not care.
    blocker = group / "task-passivewrist_atlas-juelich_desc-report.html"
    (blocker / "keep").mkdir(parents=True)
    before = set((out / "logs").glob("crash-*"))
    argv = [str(dataset), str(out), "group", "-w", str(work), "--n-permutations", "0"]
    assert main(argv) == 1
    (crash,) = set((out / "logs").glob("crash-*")) - before
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == "ERROR" and r.name == "hermesflow"]
    assert len(errors) == 1
    assert errors[0].startswith("report_sink: IsADirectoryError: [Errno 21] Is a directory")
    assert errors[0].endswith(f"(details: {crash})")
    names = sorted(p.name for p in group.iterdir() if p.is_file())
    assert names == [f"task-passivewrist_atlas-juelich_desc-{desc}" for desc in
                     ("long.json", "long.tsv", "mixedlm.json", "mixedlm.tsv",
                      "safetybyevent.tsv", "safetybywindow.tsv", "safetyfeasibility.tsv",
                      "sessionqc.tsv")]
    long = pd.read_csv(group / names[1], sep="\t")
    assert set(long["session_id"]) == {"ses-01", "ses-06"}
    assert len(long[long["outcome"] == "mi4p_ipsi_psc"]) == 5, "the five sessions that ran"
    models = pd.read_csv(group / names[3], sep="\t")
    fitted = models[(models["outcome"] == "mi4p_ipsi_psc") & (models["term"] == "Intercept")]
    assert set(fitted["n_observations"]) == {5}
    shutil.rmtree(blocker)
    caplog.clear()
    assert main(argv) == 0
    assert "<p>3 participants, 6 sessions.</p>" in blocker.read_text()


@pytest.mark.parametrize("flags, message", [
    (["--output-space", "MNI152NLin2009cAsym:cohort-1"],
     "output space 'MNI152NLin2009cAsym:cohort-1': unknown modifier 'cohort-1' -- write it as "
     "SPACE or SPACE:res-N, as fMRIPrep does"),
    (["--bids-filter-file", "missing.json"],
     "missing.json: filter file not found -- check the --bids-filter-file path"),
    (["--contrast", "move - grasp"],
     "[workflow] contrast 'move - grasp' uses grasp, not a modelled condition (move) -- add it "
     "to --conditions or fix --contrast"),
    (["--dummy-scans", "-2"], "--dummy-scans -2: must be 0 or more"),
])
def test_selection_and_model_flags_are_checked_in_one_line(dataset, tmp_path, capsys, flags,
                                                           message):
    status = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                   *flags])
    assert status == 2
    assert message in _last_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_the_up_front_check_follows_the_configured_conditions(dataset, tmp_path, caplog):
    status = main([str(dataset), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                   "--participant-label", "01", "--conditions", "grasp", "--contrast", "grasp"])
    assert status == 2, "no session is usable"
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == "ERROR" and r.name == "hermesflow"]
    events = dataset / "sub-01/ses-01/func/sub-01_ses-01_task-passivewrist_events.tsv"
    assert errors[0] == (f"sub-01 ses-01: {events}: no 'grasp' blocks in trial_type -- label "
                         "those blocks 'grasp' or change [workflow] conditions (trial types "
                         "here: move)")


def test_unexpected_errors_are_one_line_and_traceback_only_with_v(dataset, tmp_path, capsys):
    """An error hermesflow did not foresee still ends in one line; -v shows the traceback."""
    config = tmp_path / "configs"
    config.mkdir()  # a folder given as the config file: an OSError no check names
    argv = [str(dataset), str(tmp_path / "out"), "participant", "--config", str(config)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"hermesflow: error: IsADirectoryError: [Errno 21] Is a directory: "
                   f"'{config}' -- unexpected; rerun with -v for the traceback and report it"]
    with pytest.raises(IsADirectoryError):
        main([*argv, "-v"])


def test_lock_names_the_live_run_and_breaks_only_when_it_is_gone(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    from hermesflow.cli.lock import output_lock
    from hermesflow.errors import InputError

    out, host = tmp_path / "out", socket.gethostname()
    (out / "logs").mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = out / "logs" / f".run-{host}-{other.pid}.json"
        record.write_text(json.dumps({"host": host, "pid": other.pid, "start": "then",
                                      "level": "participant", "participants": ["01"],
                                      "work_dir": "/w1"}))
        # Disjoint participants in their own work folder (SLURM array tasks) may share it...
        with output_lock(out, level="participant", participants=["02"], work_dir="/w2") as run:
            mine = out / "logs" / f".run-{host}-{run['pid']}.json"
            assert json.loads(mine.read_text())["participants"] == ["02"]
        assert not mine.exists(), "released at the end"
        # ...the same participant, or a group run, may not.
        for level, labels in (("participant", ["01"]), ("group", [])):
            with pytest.raises(InputError) as caught, output_lock(
                    out, level=level, participants=labels, work_dir="/w3"):
                pass
            assert str(caught.value) == (
                f"{out}: in use by another hermesflow run (host {host}, pid {other.pid}, "
                f"started then, participant level, 01; lock {record}) -- wait for it to end "
                "or stop it (a lock is broken only when its process is gone)")
    finally:
        other.kill()
        other.wait()
    # Its process gone, the lock is broken, and the temp files a killed writer left removed.
    orphan = out / "sub-01" / ".sub-01_x.tsv.abc123.tmp"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("half")
    with output_lock(out, level="group", participants=[], work_dir="/w1"):
        assert not record.exists() and not orphan.exists()


def test_a_sessions_validator_error_leaves_out_that_session_only(dataset, tmp_path, caplog):
    bids = tmp_path / "bids"
    shutil.copytree(dataset, bids)
    t1w = bids / "sub-02/ses-06/anat/sub-02_ses-06_T1w.nii.gz"
    t1w.write_bytes(b"not a NIfTI")
    before = _tree_digest(bids)
    status = main([str(bids), str(tmp_path / "out"), "participant", "-w",
                   str(tmp_path / "work"), "--participant-label", "02"])
    assert status == 1
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == "ERROR" and r.name == "hermesflow"]
    assert errors == [f"sub-02 ses-06: {t1w}: BIDS validator NIFTI_HEADER_UNREADABLE: We were "
                      "unable to parse header data from this NIfTI file. -- fix the file "
                      "named, or leave the session out (--session-label, or "
                      "--skip-bids-validation)"]
    tables = sorted(p.name.split("_task")[0] for p in (tmp_path / "out").rglob("*.tsv")
                    if p.name.endswith("_roimeasures.tsv"))
    assert tables == ["sub-02_ses-01"]
    assert _tree_digest(bids) == before


def test_the_command_returns_mains_status_and_leaves_its_objects_to_the_os(monkeypatch,
                                                                           tmp_path, capsys):
    import gc

    from hermesflow.cli.run import console

    monkeypatch.setattr("sys.argv", ["hermesflow", str(tmp_path / "absent"),
                                     str(tmp_path / "out"), "participant"])
    try:
        assert console() == 2
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
    assert "absent" in capsys.readouterr().err
