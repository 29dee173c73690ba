"""Native preprocessing of what scanners write: a skull-on T1w in an oblique, non-RAS frame.

One simulated session (BOLD at 6 mm, T1w at 2 mm with a head around the brain, both flipped
to LAS and tilted 15 degrees about x), through :func:`run_native_session` (SyN, the default),
checked against the simulator's truth; then each bad input gives one line naming its file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ants")

from hermesflow.errors import InputError  # noqa: E402
from hermesflow.preproc.confounds import (  # noqa: E402
    MOTION_COLUMNS,
    a_comp_cor,
    non_steady_state_outliers,
)
from hermesflow.preproc.native import (  # noqa: E402
    check_inputs,
    extract_brain,
    find_inputs,
    rigid_parameters,
    run_native_session,
)
from hermesflow.simulation.head import oblique_frame  # noqa: E402
from hermesflow.simulation.images import rigid_matrix  # noqa: E402
from hermesflow.simulation.trial import simulate_trial  # noqa: E402

TASK = "passivewrist"
SPACE = "MNI152NLin2009cAsym"
TILT = 15.0


def _data(path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def skull_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("skull")
    bids = simulate_trial(root / "bids", participants=1, sessions=(1,), voxel_size=6.0,
                          n_blocks=3, seed=4, skull=True, oblique=True, oblique_deg=TILT)
    truth = bids / "derivatives" / "fmriprep" / "sub-01" / "ses-01"
    stem = f"sub-01_ses-01_task-{TASK}"
    reference = truth / "func" / f"{stem}_space-{SPACE}_desc-preproc_bold.nii.gz"
    inputs = find_inputs(bids, "01", "01", TASK)
    brain = extract_brain(inputs.t1w, inputs.lesion, root / "brain")
    result = run_native_session(bids, root / "native", "sub-01", "ses-01", task=TASK,
                                reference=reference)
    return {
        "bids": bids, "inputs": inputs, "brain": brain, "result": result,
        "truth_brain": bids / "derivatives" / "simulation" / "sub-01" / "ses-01" / "anat"
        / "sub-01_ses-01_desc-brain_mask.nii.gz",
        "truth_mask": truth / "func" / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz",
        "truth_lesion": truth / "anat" / f"sub-01_ses-01_space-{SPACE}_label-lesion_roi.nii.gz",
        "truth_confounds": pd.read_csv(truth / "func" / f"{stem}_desc-confounds_timeseries.tsv",
                                       sep="\t", na_values="n/a"),
        "confounds": pd.read_csv(result.confounds, sep="\t", na_values="n/a"),
    }


def test_raw_images_are_skull_on_oblique_and_not_ras(skull_run):
    t1w = nib.load(str(skull_run["inputs"].t1w))
    assert nib.aff2axcodes(t1w.affine)[0] == "L"
    rotation = t1w.affine[:3, :3] / np.abs(t1w.affine[:3, :3]).max(axis=0)
    assert np.abs(rotation[1:, 1:]).min() > 0.2  # y and z axes mixed: oblique
    data, brain = _data(t1w.get_filename()), _data(skull_run["truth_brain"]) > 0
    # A head: about as much bright-enough tissue outside the brain as the scalp holds.
    outside = (data > 0.3 * np.percentile(data[brain], 99)) & ~brain
    assert outside.sum() > 0.2 * brain.sum()


def test_brain_extraction_matches_the_true_brain(skull_run, record_property):
    found = _data(skull_run["brain"].mask) > 0
    truth = _data(skull_run["truth_brain"]) > 0
    dice = _dice(found, truth)
    record_property("brain_mask_dice", round(float(dice), 4))
    # Measured (seed 4, 2 mm T1w): Dice 0.988, 230k voxels found for 235k true.
    assert dice >= 0.95
    assert skull_run["brain"].transforms and not skull_run["brain"].skull_stripped


def test_mni_brain_mask_and_lesion_land_on_the_truth(skull_run, record_property):
    result = skull_run["result"]
    brain = _dice(_data(result.mask) > 0, _data(skull_run["truth_mask"]) > 0)
    lesion = _dice(_data(result.lesion_mask) > 0, _data(skull_run["truth_lesion"]) > 0)
    record_property("mni_brain_mask_dice", round(float(brain), 4))
    record_property("mni_lesion_dice", round(float(lesion), 4))
    assert brain >= 0.95
    assert lesion > 0.6


def test_motion_follows_the_truth_in_the_oblique_frame(skull_run):
    # The raw frame is tilted: the true motion, seen in it, is conjugated by the tilt.
    _, tilted = oblique_frame((2, 2, 2), np.eye(4), TILT)
    tilt = np.eye(4)
    tilt[:3, :3] = tilted[:3, :3] @ np.diag([-1.0, 1.0, 1.0])
    truth = skull_run["truth_confounds"][list(MOTION_COLUMNS)].to_numpy()
    seen = np.array([rigid_parameters(tilt @ rigid_matrix(m) @ np.linalg.inv(tilt))
                     for m in truth])
    estimate = skull_run["confounds"][list(MOTION_COLUMNS)].to_numpy()
    above_noise = 0
    for axis, column in enumerate(MOTION_COLUMNS):
        # Above noise: 0.1 mm or 0.002 rad of true s.d. (6 mm voxels).
        if seen[:, axis].std() < (0.1 if axis < 3 else 0.002):
            continue
        above_noise += 1
        r = np.corrcoef(seen[:, axis], estimate[:, axis])[0, 1]
        assert r > 0.99, (column, r)
    assert above_noise >= 3


def test_confounds_carry_fmriprep_noise_columns(skull_run):
    confounds = skull_run["confounds"]
    assert list(confounds.columns[:3]) == ["global_signal", "csf", "white_matter"]
    comp_cor = [c for c in confounds.columns if c.startswith("a_comp_cor_")]
    assert comp_cor and comp_cor[0] == "a_comp_cor_00"
    assert confounds[["csf", "white_matter"] + comp_cor].notna().all().all()
    # Components are orthonormal time courses.
    gram = confounds[comp_cor].to_numpy().T @ confounds[comp_cor].to_numpy()
    np.testing.assert_allclose(gram, np.eye(len(comp_cor)), atol=1e-6)
    # The indicator columns are the detector's verdict on the written global signal (nipype's
    # NonSteadyStateDetector rule).  No dummy scans were simulated, but on this 36-volume run
    # the first volume's global signal can sit past the rule's 3.5 modified z (measured 4.57):
    # at most that one volume may be flagged.
    flagged = [c for c in confounds.columns if c.startswith("non_steady_state_outlier")]
    expected = non_steady_state_outliers(confounds["global_signal"].to_numpy())
    assert flagged == list(expected.columns)
    assert len(flagged) <= 1
    np.testing.assert_array_equal(confounds[flagged].to_numpy(), expected.to_numpy())
    bold = skull_run["result"].bold
    sidecar = json.loads(Path(bold[:-len(".nii.gz")] + ".json").read_text())
    assert sidecar["SliceTimingCorrected"] is False


def test_a_comp_cor_and_non_steady_state_on_known_signals():
    rng = np.random.default_rng(0)
    time = np.arange(120)
    common = np.sin(time / 3.0)
    signals = np.outer(common, rng.normal(1, 0.1, 200)) + rng.normal(0, 0.3, (120, 200))
    components = a_comp_cor(signals, t_r=2.0)
    assert abs(np.corrcoef(components["a_comp_cor_00"], common)[0, 1]) > 0.95
    global_signal = np.r_[[1300.0, 1150.0], 1000 + rng.normal(0, 5, 118)]
    outliers = non_steady_state_outliers(global_signal)
    assert list(outliers.columns) == ["non_steady_state_outlier00",
                                      "non_steady_state_outlier01"]
    assert outliers.to_numpy().sum() == 2 and outliers.iloc[1, 1] == 1


@pytest.fixture()
def bad_copy(skull_run, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(skull_run["bids"] / "sub-01", bids / "sub-01")
    shutil.copy(skull_run["bids"] / f"task-{TASK}_bold.json", bids)
    return bids, find_inputs(bids, "01", "01", TASK)


def _one_line_naming(error: InputError, path) -> None:
    assert error.path == str(path) and "\n" not in str(error) and error.fix


def test_3d_bold_is_refused(bad_copy):
    bids, inputs = bad_copy
    img = nib.load(str(inputs.bold))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine), str(inputs.bold))
    with pytest.raises(InputError) as caught:
        check_inputs(inputs, bids, TASK)
    _one_line_naming(caught.value, inputs.bold)
    assert "4D" in str(caught.value)


def test_missing_tr_is_refused(bad_copy):
    bids, inputs = bad_copy
    (bids / f"task-{TASK}_bold.json").write_text(json.dumps({"TaskName": TASK}))
    with pytest.raises(InputError) as caught:
        check_inputs(inputs, bids, TASK)
    _one_line_naming(caught.value, inputs.bold)
    assert "RepetitionTime" in str(caught.value)


def test_degenerate_affine_is_refused(bad_copy):
    bids, inputs = bad_copy
    img = nib.load(str(inputs.t1w))
    affine = img.affine.copy()
    affine[:3, 2] = 0.0
    # As a broken converter writes it: a singular sform, no qform (nibabel's own save refuses).
    broken = nib.Nifti1Image(np.asarray(img.dataobj), None)
    broken.header.set_sform(affine, code=1)
    broken.header.set_qform(None, code=0)
    nib.save(broken, str(inputs.t1w))
    with pytest.raises(InputError) as caught:
        check_inputs(inputs, bids, TASK)
    _one_line_naming(caught.value, inputs.t1w)
    assert "degenerate affine" in str(caught.value)


def test_lesion_on_another_grid_is_refused(bad_copy):
    bids, inputs = bad_copy
    img = nib.load(str(inputs.lesion))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[::2, ::2, ::2],
                             img.affine @ np.diag([2.0, 2.0, 2.0, 1.0])), str(inputs.lesion))
    with pytest.raises(InputError) as caught:
        check_inputs(inputs, bids, TASK)
    _one_line_naming(caught.value, inputs.lesion)


def test_failed_brain_extraction_names_the_t1w(tmp_path):
    # A skull-stripped-looking T1w whose "brain" is a 3 cm cube: 27 mL, far from a brain.
    data = np.zeros((40, 40, 40), np.float32)
    data[10:25, 10:25, 10:25] = 100.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    t1w, lesion = tmp_path / "t1w.nii.gz", tmp_path / "lesion.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(t1w))
    nib.save(nib.Nifti1Image(np.zeros(data.shape, np.uint8), affine), str(lesion))
    with pytest.raises(InputError) as caught:
        extract_brain(t1w, lesion, tmp_path / "work")
    _one_line_naming(caught.value, t1w)
    assert "mL" in str(caught.value)
