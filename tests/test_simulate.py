"""The simulator: BIDS-valid, reproducible byte for byte, and its truth is what it claims."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from hermesflow.bids.validate import validate
from hermesflow.simulation.trial import (
    SimulationSpec,
    simulate_trial,
    time_profile,
    true_parameters,
)

TINY = {"participants": 2, "sessions": (1, 24), "voxel_size": 8.0, "n_blocks": 3}


def _digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return simulate_trial(tmp_path_factory.mktemp("tiny") / "bids", seed=7, **TINY)


def test_same_seed_same_bytes(tiny, tmp_path):
    again = simulate_trial(tmp_path / "again", seed=7, **TINY)
    assert _digest(tiny) == _digest(again)
    other = simulate_trial(tmp_path / "other", seed=8, **TINY)
    assert _digest(tiny) != _digest(other)


def test_raw_dataset_passes_the_bids_validator(tiny):
    errors = [i for i in validate(tiny) if i.severity == "error"]
    assert errors == []


def test_tables_have_the_contract_columns(tiny):
    participants = pd.read_csv(tiny / "participants.tsv", sep="\t")
    assert {"participant_id", "arm", "treated", "lesion_side"} <= set(participants.columns)
    assert set(participants["arm"]) <= {"msc", "control"}
    sessions = pd.read_csv(tiny / "sub-01" / "sub-01_sessions.tsv", sep="\t")
    assert list(sessions["months"]) == [1, 24]
    for score, (low, high) in {"barthel": (0, 100), "nihss": (0, 42), "nihss_motor": (0, 16),
                               "mrs": (0, 6), "fm_motor": (0, 100)}.items():
        assert sessions[score].between(low, high).all(), score
    confounds = pd.read_csv(
        tiny / "derivatives/fmriprep/sub-01/ses-24/func"
        / "sub-01_ses-24_task-passivewrist_desc-confounds_timeseries.tsv", sep="\t",
        na_values="n/a")
    assert {"trans_x", "rot_z", "framewise_displacement"} <= set(confounds.columns)
    assert np.isnan(confounds["framewise_displacement"].iloc[0])
    assert (confounds["framewise_displacement"].iloc[1:] >= 0).all()


def test_true_parameters_follow_the_documented_coding():
    spec = SimulationSpec(effect_size=0.6, time_gain=0.2, sessions=(1, 6, 24))
    table = true_parameters(spec).set_index(["outcome", "term"])["true_value"]
    g6 = np.log(6) / np.log(24)
    assert time_profile([1, 6, 24], [1, 6, 24]) == pytest.approx([0, g6, 1])
    assert table["mi4p_ipsi_psc", "arm:time[ses-24]"] == pytest.approx(0.6)
    assert table["mi4p_ipsi_psc", "arm:time[ses-06]"] == pytest.approx(0.6 * g6)
    assert table["mi4p_ipsi_psc", "time[ses-24]"] == pytest.approx(0.2)
    assert table["mi4p_contra_psc", "arm:time[ses-24]"] == 0.0
    assert table["mi4a_ipsi_psc", "arm"] == 0.0


def test_refuses_to_overwrite_a_dataset(tiny):
    with pytest.raises(FileExistsError):
        simulate_trial(tiny, seed=7, **TINY)
