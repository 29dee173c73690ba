"""Data sanity checks: each degenerate input is refused in one exact line; sound data pass."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import make_first_level_design_matrix

from hermesflow.errors import InputError
from hermesflow.glm.sanity import (
    check_events_in_scan,
    check_repetition_time,
    check_same_grid,
    check_session_data,
    check_task_regressor,
    header_repetition_time,
    read_checked_series,
)

T_R, N_VOLUMES = 2.0, 40
BOLD = "sub-01_ses-01_task-passivewrist_bold.nii.gz"
EVENTS = "sub-01_ses-01_task-passivewrist_events.tsv"


def _series(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = 100 + rng.normal(size=(4, 4, 3, N_VOLUMES))
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1:3, 1:3, :] = 1  # 12 voxels
    return data, mask


def _events(onsets=(10, 40, 70)) -> pd.DataFrame:
    return pd.DataFrame({"onset": list(onsets), "duration": [10.0] * len(onsets),
                         "trial_type": ["move"] * len(onsets)})


def _design(events: pd.DataFrame, confounds: pd.DataFrame | None = None) -> pd.DataFrame:
    frames = np.arange(N_VOLUMES) * T_R
    return make_first_level_design_matrix(frames, events, hrf_model="glover",
                                          drift_model="cosine", high_pass=0.01,
                                          add_regs=confounds)


def _message(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


@pytest.fixture
def checked(tmp_path):
    """The GLM's one read of a series written to disk (as float32 NIfTI), with its checks."""
    def read(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
        path = tmp_path / BOLD
        nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), path)
        return read_checked_series(nib.load(path), BOLD, np.asarray(mask) > 0)

    return read


def test_sound_series_pass(checked):
    data, mask = _series()
    series = checked(data, mask)
    # Voxels in the file's order (x fastest), one column each.
    in_file_order = data.reshape(-1, N_VOLUMES, order="F")[mask.ravel(order="F") > 0]
    np.testing.assert_array_equal(series, in_file_order.T.astype(np.float32))


def test_non_finite_values_are_refused(checked):
    data, mask = _series()
    data[0, 0, 0, 3] = np.nan   # outside the mask: still refused
    data[1, 1, 1, 7] = np.inf
    assert _message(checked, data, mask) == (
        f"{BOLD}: 2 non-finite value(s) (NaN or inf) in the BOLD series -- rerun the "
        "preprocessing of this run, or replace them before the GLM")


def test_flat_and_all_zero_series_are_refused(checked):
    data, mask = _series()
    flat = np.broadcast_to(data[..., :1], data.shape)
    expected = (f"{BOLD}: 12 of 12 voxels inside the brain mask have a constant series (no "
                "signal) -- check the preprocessing output; an all-zero or flat BOLD cannot be "
                "modelled")
    assert _message(checked, flat, mask) == expected
    assert _message(checked, np.zeros_like(data), mask) == expected


def test_a_few_constant_edge_voxels_are_tolerated_but_not_many(checked):
    data, mask = _series()
    big_mask = np.ones((4, 4, 3), np.uint8)  # 48 voxels: 2 constant is 4 %
    data[0, 0, 0] = 5.0
    data[3, 3, 2] = 5.0
    checked(data, big_mask)
    data[0, 1, 0] = 5.0  # 3 of 48 = 6 %
    assert _message(checked, data, big_mask).startswith(
        f"{BOLD}: 3 of 48 voxels inside the brain mask have a constant series")


def test_empty_mask_and_short_series_are_refused(checked):
    data, mask = _series()
    assert _message(checked, data, np.zeros_like(mask)) == (
        f"{BOLD}: the brain mask holds no voxel -- use the brain mask of this run")
    assert _message(checked, data[..., :2], mask) == (
        f"{BOLD}: holds 2 volume(s), too few for a GLM -- use the full 4D BOLD run")


def test_sound_design_passes():
    rng = np.random.default_rng(1)
    confounds = pd.DataFrame(rng.normal(size=(N_VOLUMES, 3)), columns=["a", "b", "c"])
    check_task_regressor(_design(_events(), confounds), "move", EVENTS)


def test_events_after_the_scan_give_a_zero_regressor():
    design = _design(_events(onsets=(100, 130)))  # the scan lasts 80 s
    assert _message(check_task_regressor, design, "move", EVENTS) == (
        f"{EVENTS}: the 'move' regressor is zero over the scan -- check the onsets and "
        "durations against the run's length")


def test_a_task_regressor_explained_by_the_confounds_is_refused():
    task = _design(_events())["move"].to_numpy()
    rng = np.random.default_rng(2)
    confounds = pd.DataFrame({"trans_x": 0.5 * task + 1e-3 * rng.normal(size=N_VOLUMES),
                              "rot_z": rng.normal(size=N_VOLUMES)})
    design = _design(_events(), confounds)
    message = _message(check_task_regressor, design, "move", EVENTS)
    assert message.startswith(f"{EVENTS}: the 'move' regressor is collinear with the "
                              "confounds (R^2 = 1.000)")
    assert message.endswith("-- check the events' timing and the confound columns chosen")
    # Against the drift and constant alone the same regressor is estimable.
    check_task_regressor(design, "move", EVENTS, others=["constant", "drift_1"])


def test_a_missing_task_column_is_named():
    design = _design(_events()).drop(columns="move")
    assert _message(check_task_regressor, design, "move", EVENTS) == (
        f"{EVENTS}: the design has no 'move' regressor -- label the task blocks 'move' in "
        "trial_type")


def test_events_outside_the_scan_and_missing_onsets():
    check_events_in_scan(_events(), N_VOLUMES, T_R, EVENTS)
    late = _events(onsets=(10, 80, 95))
    assert _message(check_events_in_scan, late, N_VOLUMES, T_R, EVENTS) == (
        f"{EVENTS}: 2 'move' event(s) outside the scan (first at 80 s; the scan lasts 80 s) "
        "-- use the events of this run, in seconds from its first volume")
    early = _events(onsets=(-20, 10))
    assert "1 'move' event(s) outside the scan (first at -20 s" in _message(
        check_events_in_scan, early, N_VOLUMES, T_R, EVENTS)
    blank = _events().astype({"onset": object})
    blank.loc[1, "onset"] = "n/a"
    assert _message(check_events_in_scan, blank, N_VOLUMES, T_R, EVENTS) == (
        f"{EVENTS}: 1 'move' event(s) without a numeric onset or duration -- write seconds "
        "as numbers (n/a is not allowed here)")
    # Other trial types are not this check's business.
    rest = pd.concat([_events(), pd.DataFrame({"onset": [500], "duration": [5],
                                               "trial_type": ["rest"]})])
    check_events_in_scan(rest, N_VOLUMES, T_R, EVENTS)


def test_repetition_time_of_sidecar_and_header():
    img = nib.Nifti1Image(np.zeros((2, 2, 2, 5), np.float32), np.eye(4))
    img.header.set_zooms((2, 2, 2, 2.5))
    img.header.set_xyzt_units("mm", "sec")
    assert header_repetition_time(img) == 2.5
    img.header.set_zooms((2, 2, 2, 2500))
    img.header.set_xyzt_units("mm", "msec")
    assert header_repetition_time(img) == 2.5
    check_repetition_time(2.5, 2.5, "bold.json")
    check_repetition_time(2.5, 2.50001, "bold.json")
    check_repetition_time(2.0, None, "bold.json")  # unset in the header: nothing to compare
    assert _message(check_repetition_time, 2.0, 2.5, "bold.json") == (
        "bold.json: RepetitionTime 2 s in the sidecar but 2.5 s in the NIfTI header -- "
        "correct the sidecar (or the header) so both give the true TR")


def test_grids_must_match_and_are_never_resampled():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    bold = nib.Nifti1Image(np.zeros((4, 4, 3, 5), np.float32), affine)
    mask = nib.Nifti1Image(np.ones((4, 4, 3), np.uint8), affine)
    check_same_grid({"bold.nii.gz": bold, "mask.nii.gz": mask, "lesion.nii.gz": None})
    shifted = nib.Nifti1Image(np.ones((4, 4, 3), np.uint8),
                              nib.affines.from_matvec(np.diag([2.0, 2, 2]), [2, 0, 0]))
    assert _message(check_same_grid, {"bold.nii.gz": bold, "lesion.nii.gz": shifted}) == (
        "lesion.nii.gz: grid 4x4x3 at 2x2x2 mm differs from 4x4x3 at 2x2x2 mm of "
        "bold.nii.gz -- give every image of the session on the BOLD's grid (hermesflow does "
        "not resample them)")
    coarse = nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.diag([4.0, 4.0, 4.0, 1.0]))
    assert _message(check_same_grid, {"bold.nii.gz": bold, "mask.nii.gz": coarse}).startswith(
        "mask.nii.gz: grid 2x2x2 at 4x4x4 mm differs from 4x4x3 at 2x2x2 mm of bold.nii.gz")


def test_session_data_from_files(tmp_path):
    data, mask = _series()
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    bold_img = nib.Nifti1Image(data.astype(np.float32), affine)
    bold_img.header.set_zooms((3, 3, 3, T_R))
    bold_img.header.set_xyzt_units("mm", "sec")
    bold, mask_file = tmp_path / BOLD, tmp_path / "mask.nii.gz"
    nib.save(bold_img, bold)
    nib.save(nib.Nifti1Image(mask, affine), mask_file)
    sidecar = tmp_path / "bold.json"
    check_session_data(bold, mask_file, None, T_R, sidecar)
    assert _message(check_session_data, bold, mask_file, None, 3.0, sidecar).startswith(
        f"{sidecar}: RepetitionTime 3 s in the sidecar but 2 s in the NIfTI header")
    nib.save(nib.Nifti1Image(np.zeros_like(data, np.float32), affine, bold_img.header), bold)
    assert _message(check_session_data, bold, mask_file, None, T_R, sidecar).startswith(
        f"{bold}: 12 of 12 voxels inside the brain mask have a constant series")
