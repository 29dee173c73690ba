"""Up-front input checks (bids/checks.py): every session checked, bad ones named, others kept."""

from __future__ import annotations

import shutil

import pytest

from hermesflow.bids.checks import check_paths, check_sessions, raw_input_checks
from hermesflow.errors import InputError
from hermesflow.simulation.trial import simulate_trial

PAIRS = [("01", "01"), ("01", "06"), ("02", "01"), ("02", "06")]


@pytest.fixture(scope="module")
def bids(tmp_path_factory):
    return simulate_trial(tmp_path_factory.mktemp("checks") / "bids", participants=2,
                          sessions=(1, 6), voxel_size=8.0, n_blocks=3, seed=5)


@pytest.fixture
def broken(bids, tmp_path):
    """A copy with sub-01 ses-06's events and sub-02 ses-01's T1w removed."""
    copy = tmp_path / "bids"
    shutil.copytree(bids, copy, ignore=shutil.ignore_patterns("derivatives"))
    (copy / "sub-01/ses-06/func/sub-01_ses-06_task-passivewrist_events.tsv").unlink()
    (copy / "sub-02/ses-01/anat/sub-02_ses-01_T1w.nii.gz").unlink()
    return copy


def test_raw_inputs_of_each_session(broken):
    good, problems = check_sessions(PAIRS, raw_input_checks(str(broken), "passivewrist",
                                                            "existing"))
    events = broken / "sub-01/ses-06/func/sub-01_ses-06_task-passivewrist_events.tsv"
    assert good == [("01", "01"), ("02", "01"), ("02", "06")]
    assert problems == [f"sub-01 ses-06: {events}: events file missing -- write "
                        "onset/duration/trial_type blocks"]


def test_native_needs_the_t1w(broken):
    good, problems = check_sessions(PAIRS, raw_input_checks(str(broken), "passivewrist",
                                                            "native"))
    assert ("02", "01") not in good and len(good) + len(problems) == len(PAIRS)
    t1w = broken / "sub-02/ses-01/anat/sub-02_ses-01_T1w.nii.gz"
    assert any(p.startswith(f"sub-02 ses-01: {t1w}: T1w image missing") for p in problems)


def test_a_later_stage_check_is_passed_in(bids):
    seen = []

    def preprocessed(subject: str, session: str) -> None:
        seen.append((subject, session))
        if session == "06":
            raise InputError(f"/prep/sub-{subject}", "no BOLD in MNI space", "rerun fMRIPrep")

    good, problems = check_sessions(PAIRS, [*raw_input_checks(str(bids), "passivewrist",
                                                               "existing"), preprocessed])
    assert seen == PAIRS, "the passed-in check runs after the raw checks, on every session"
    assert good == [("01", "01"), ("02", "01")]
    assert problems == ["sub-01 ses-06: /prep/sub-01: no BOLD in MNI space -- rerun fMRIPrep",
                        "sub-02 ses-06: /prep/sub-02: no BOLD in MNI space -- rerun fMRIPrep"]


def test_check_paths(bids, tmp_path):
    check_paths(bids, tmp_path / "out")
    check_paths(bids, bids / "derivatives" / "hermesflow", bids / "derivatives" / "fmriprep")
    with pytest.raises(InputError, match="inside the raw dataset"):
        check_paths(bids, bids / "out")
    with pytest.raises(InputError, match="BIDS folder not found"):
        check_paths(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(InputError, match="fMRIPrep derivatives folder not found"):
        check_paths(bids, tmp_path / "out", tmp_path / "no_fmriprep")
