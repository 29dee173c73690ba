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


def test_native_bold_equals_per_volume_resampling():
    from hermesflow.simulation import images

    rng = np.random.default_rng(3)
    series = rng.normal(1000, 50, (9, 10, 11, 5)).astype(np.float32)  # C order, edges non-zero
    affine = np.diag([-3.0, 3.0, 3.0, 1.0])
    head = images.rigid_matrix(np.array([2.0, -1.0, 0.5, 0.02, -0.03, 0.01]))
    motion = images.head_motion(5, rng, scale=5.0)
    expected = np.stack([images.to_native(series[..., t], affine,
                                          head @ images.rigid_matrix(motion[t]))
                         for t in range(5)], axis=-1)
    native = images.native_bold(series, affine, head, motion)
    np.testing.assert_allclose(native, expected, rtol=1e-6, atol=1e-4)
    assert native.flags.f_contiguous


def test_ar1_noise_follows_its_recursion():
    from hermesflow.simulation.images import ar1_noise

    noise = ar1_noise((50, 7), 0.3, 1.0, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    innovations = rng.normal(0.0, np.sqrt(1 - 0.09), (50, 7)).astype(np.float32)
    expected = np.empty((50, 7), np.float32)
    expected[0] = rng.normal(0.0, 1.0, 7)
    for t in range(1, 50):
        expected[t] = 0.3 * expected[t - 1] + innovations[t]
    assert noise.dtype == np.float32
    np.testing.assert_allclose(noise, expected, rtol=1e-5, atol=1e-5)


def test_gzip_level_changes_bytes_not_data(tmp_path):
    import nibabel as nib

    from hermesflow.derivatives.writing import write_nifti

    img = nib.Nifti1Image(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), np.eye(4))
    fast = write_nifti(tmp_path / "fast.nii.gz", img, compresslevel=1)
    default = write_nifti(tmp_path / "default.nii.gz", img)
    assert np.array_equal(np.asanyarray(nib.load(fast).dataobj),
                          np.asanyarray(nib.load(default).dataobj))
    assert write_nifti(tmp_path / "again.nii.gz", img, compresslevel=1).read_bytes() \
        == fast.read_bytes()


def test_parallel_simulation_writes_the_same_bytes(tmp_path):
    """Participants simulated in two forked processes give the one-process dataset, byte for
    byte (each draws from its own stream and writes its own folders)."""
    from hermesflow.simulation.trial import SimulationSpec, simulate_trial

    def spec():
        return SimulationSpec(participants=3, seed=4, voxel_size=8.0, sessions=(1, 6))

    one = simulate_trial(tmp_path / "one", spec(), n_procs=1)
    two = simulate_trial(tmp_path / "two", spec(), n_procs=2)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) > 40
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    different = [str(f) for f in files if (one / f).read_bytes() != (two / f).read_bytes()]
    assert different == []
