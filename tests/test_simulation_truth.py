"""The simulator's truth is not the pipeline's measuring atlas; ``--tr`` round-trips.

Activation is placed in the Juelich maps smoothed and displaced per participant
(:mod:`hermesflow.simulation.truth`); the pipeline measures the maps thresholded at 25 %.  The
truth table says what was placed and what the ROI should see; the GLM must recover the latter.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from hermesflow.cli.run import main
from hermesflow.glm.model import fit_session_glm
from hermesflow.preproc.gather import gather_session
from hermesflow.roi.atlases import load_atlas, roi_maps, roi_masks
from hermesflow.roi.measures import extract_roi_measures
from hermesflow.simulation.truth import activation_profiles

TASK, MNI = "passivewrist", "MNI152NLin2009cAsym"
CONFOUNDS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "framewise_displacement"]
# One 6 mm session at TR 1.5 s (six 20 s move/rest pairs: 160 volumes), its areas displaced
# by N(0, 6 mm) per axis: a misregistration large enough to matter.
SPEC = {"participants": 1, "sessions": (1,), "voxel_size": 6.0, "n_blocks": 6, "tr": 1.5,
        "truth_shift_mm": 6.0, "seed": 4}


def _data(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The simulated session, its inputs as the pipeline gathers them, and its ROI table."""
    from hermesflow.simulation.trial import load_truth, simulate_trial

    root = tmp_path_factory.mktemp("truth")
    bids = simulate_trial(root / "bids", **SPEC)
    fmriprep = bids / "derivatives" / "fmriprep"
    inputs = gather_session(str(bids), str(fmriprep), "01", "01", TASK, MNI)
    maps = fit_session_glm(inputs["bold"], inputs["mask"], inputs["confounds"],
                           inputs["events"], inputs["t_r"], root / "glm",
                           confound_columns=CONFOUNDS, sidecar=inputs["sidecar"])
    table = extract_roi_measures(maps, maps["mask"], inputs["lesion_side"],
                                 lesion_mask=inputs["lesion_mask"], space=MNI)
    truth = load_truth(bids)[0].set_index(["roi", "hemi"])
    truth["measured"] = table[table["measure"] == "psc"].set_index(["roi", "hemi"])["value"]
    return SimpleNamespace(bids=bids, fmriprep=fmriprep, inputs=inputs, truth=truth)


def _grid(mask_path) -> SimpleNamespace:
    img = nib.load(mask_path)
    return SimpleNamespace(affine=img.affine, shape=img.shape[:3], brain=_data(mask_path) > 0,
                           image=img)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_profiles_are_the_atlas_smoothed_and_displaced(session):
    grid = _grid(session.inputs["mask"][0])
    atlas = load_atlas("juelich")
    pipeline = roi_maps(atlas, grid.image, 25.0)
    plain = activation_profiles(grid, (0.0, 0.0, 0.0), 0.0)
    step = grid.affine[0, 0]  # one voxel along x, in mm (with its sign)
    moved = activation_profiles(grid, (step, 0.0, 0.0), 0.0)
    both = grid.brain[1:] & grid.brain[:-1]
    for key, found in pipeline.items():
        # Undisplaced and unsmoothed, the profile is the atlas probability the pipeline reads.
        np.testing.assert_allclose(plain[key], found.weight * grid.brain, atol=1e-6)
        # Displaced by d, the profile at x is the atlas's at x - d.
        np.testing.assert_allclose(moved[key][1:][both], plain[key][:-1][both], atol=1e-6)
    # The placed maps are not the measuring masks: thresholded alike, they overlap only in part.
    masks = roi_masks(atlas, grid.image, 25.0)
    smooth = activation_profiles(grid, (0.0, 0.0, 0.0), 4.0)
    shifted = activation_profiles(grid, (4.0, -4.0, 4.0), 4.0)
    for key, mask in masks.items():
        mask = mask & grid.brain
        assert 0.5 < _dice(smooth[key] >= 0.25, mask) < 0.95, key
        assert _dice(shifted[key] >= 0.25, mask) < _dice(smooth[key] >= 0.25, mask), key


def test_truth_table_reports_placement_and_what_the_roi_should_see(session):
    truth = session.truth
    shift = truth[["shift_x_mm", "shift_y_mm", "shift_z_mm"]].to_numpy()
    assert (shift == shift[0]).all(), "one displacement per participant"
    assert np.linalg.norm(shift[0]) > 3.0, "seed 4 draws a displacement that matters"
    assert (truth["fwhm_mm"] == 4.0).all()
    # Recomputed from the files the pipeline reads: its masks on the fMRIPrep brain mask's
    # grid, the lesion removed; the placed activation rebuilt from the reported placement.
    grid = _grid(session.inputs["mask"][0])
    lesion = _data(session.inputs["lesion_mask"]) > 0
    profiles = activation_profiles(grid, shift[0], 4.0)
    activation = sum(row.true_psc * profiles[(roi, row.side)]
                     for (roi, _), row in truth.iterrows())
    masks = roi_masks(load_atlas("juelich"), grid.image, 25.0)
    for (roi, hemi), row in truth.iterrows():
        mask = masks[(roi, row.side)] & grid.brain & ~lesion
        assert row.expected_psc == pytest.approx(activation[mask].mean(), rel=1e-5)
        assert row.weight_in_roi == pytest.approx(profiles[(roi, row.side)][mask].mean(),
                                                  rel=1e-5)
        # What the ROI sees is every area's placed amplitude times the reported weight.
        assert row.weight_in_roi == row[f"weight_{roi}_{hemi}"]
        assert row.expected_psc == pytest.approx(sum(
            row[f"weight_{area}_{h}"] * truth.loc[(area, h), "true_psc"] for area, h in truth.index
        ), rel=1e-9)
    # The bias is visible: a ROI sees a small share of its own area, and part of the others.
    assert truth["weight_in_roi"].between(0.001, 0.5).all()
    assert (truth["expected_psc"] - truth["true_psc"]).abs().min() > 0.05


def test_recovered_values_follow_the_expected_not_the_placed(session):
    truth = session.truth
    error_expected = (truth["measured"] - truth["expected_psc"]).abs()
    error_placed = (truth["measured"] - truth["true_psc"]).abs()
    # The GLM's error on a ROI mean of 35-80 voxels at 6 mm is about 0.03 %: 0.08 is ~2.5 SE.
    assert (error_expected < 0.08).all(), error_expected.to_dict()
    assert (error_expected < error_placed).all()
    assert error_placed.max() > 0.3, "the placed amplitude is not what a displaced ROI sees"


def test_tr_is_written_and_the_glm_uses_it(session):
    bids, fmriprep = session.bids, session.fmriprep
    sidecars = [bids / f"task-{TASK}_bold.json",
                fmriprep / f"sub-01/ses-01/func/sub-01_ses-01_task-{TASK}_space-{MNI}"
                           "_desc-preproc_bold.json"]
    for sidecar in sidecars:
        assert json.loads(sidecar.read_text())["RepetitionTime"] == 1.5
    images = [bids / f"sub-01/ses-01/func/sub-01_ses-01_task-{TASK}_bold.nii.gz",
              session.inputs["bold"][0]]
    for path in images:
        header = nib.load(path).header
        assert header.get_zooms()[3] == pytest.approx(1.5)
        assert header.get_data_shape()[3] == 160  # 6 pairs x 40 s / 1.5 s
    assert session.inputs["t_r"] == [1.5]
    events = pd.read_csv(session.inputs["events"][0], sep="\t")
    # The last move block ends with the run: the volumes cover the design at this TR.
    assert events["onset"].iloc[-1] + events["duration"].iloc[-1] == pytest.approx(160 * 1.5)


def test_simulate_flag_tr(monkeypatch, tmp_path, capsys):
    import hermesflow.simulation.trial as trial

    seen = {}
    monkeypatch.setattr(trial, "simulate_trial", lambda out, spec, n_procs=1: seen.setdefault("spec", spec))
    assert main(["simulate", str(tmp_path / "a"), "--tr", "1.5"]) == 0
    assert seen["spec"].tr == 1.5 and seen["spec"].n_volumes == 160
    capsys.readouterr()
    for bad in ("0", "-2", "25"):
        assert main(["simulate", str(tmp_path / "b"), "--tr", bad]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        assert f"repetition time {float(bad):g} s: must be positive and no longer than a " \
               "20 s block -- choose e.g. --tr 2" in lines[0]


def test_displacement_off_leaves_every_other_draw(tmp_path):
    from hermesflow.simulation.trial import load_truth, simulate_trial

    tiny = {"participants": 2, "sessions": (1, 24), "voxel_size": 8.0, "n_blocks": 3, "seed": 7}
    still = simulate_trial(tmp_path / "still", truth_shift_mm=0.0, **tiny)
    moved = simulate_trial(tmp_path / "moved", **tiny)  # the default, 2 mm per axis
    still_roi, moved_roi = load_truth(still)[0], load_truth(moved)[0]
    shifts = ["shift_x_mm", "shift_y_mm", "shift_z_mm"]
    assert (still_roi[shifts] == 0).all().all()
    assert (moved_roi[shifts].abs() > 0).all().all()
    # The displacements have their own random stream: the trial itself is drawn alike.
    for name in ("participants.tsv", "sub-01/sub-01_sessions.tsv", "sub-02/sub-02_sessions.tsv"):
        assert (still / name).read_bytes() == (moved / name).read_bytes(), name
    pd.testing.assert_series_equal(still_roi["true_psc"], moved_roi["true_psc"])
    # Undisplaced, the ROI still sees its own area only in part (probability-weighted and
    # smoothed: partial volume alone); displaced, what it sees changes.
    assert still_roi["weight_in_roi"].between(0.2, 0.6).all()
    assert not np.allclose(still_roi["expected_psc"], moved_roi["expected_psc"], atol=1e-3)
