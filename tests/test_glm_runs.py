"""The GLM on real-world runs: dummy scans, confound gaps, slice timing, conditions, no confounds,
several runs combined by fixed effects."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from hermesflow.errors import ConfigError, InputError
from hermesflow.glm.confounds import read_confounds
from hermesflow.glm.model import check_model_options, fit_session_glm, slice_time_reference
from hermesflow.simulation.images import block_regressor

TR, N_VOLUMES, AMPLITUDE = 2.0, 100, 2.0
ONSETS = np.arange(20.0, 200.0, 40.0)
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
STEM = "sub-01_ses-01_task-passivewrist_run-1"
SPACE = "space-MNI152NLin2009cAsym_res-2"


def _write_run(folder, *, seed=0, noise=0.3, dummy_volumes=0, stem=STEM, rest_blocks=False):
    """An fMRIPrep-named run on 6x6x6 voxels: the x < 3 half responds with AMPLITUDE % signal
    change to 'move'; the first ``dummy_volumes`` are bright, as before steady state."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    regressor = block_regressor(ONSETS, 20.0, TR, N_VOLUMES)
    baseline = rng.uniform(500, 1500, (6, 6, 6))
    amplitude = np.zeros((6, 6, 6))
    amplitude[:3] = AMPLITUDE
    motion = np.cumsum(rng.normal(0, 0.02, (N_VOLUMES, 6)), axis=0)
    percent = amplitude[..., None] * regressor + rng.normal(0, noise, (6, 6, 6, N_VOLUMES))
    bold = baseline[..., None] * (1 + percent / 100)
    # Longitudinal magnetisation not yet at steady state: the first volumes are brighter.
    for k, factor in enumerate([3.0, 2.2, 1.6, 1.25][:dummy_volumes]):
        bold[..., k] *= factor
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    paths = {"bold": folder / f"{stem}_{SPACE}_desc-preproc_bold.nii.gz",
             "mask": folder / f"{stem}_{SPACE}_desc-brain_mask.nii.gz",
             "confounds": folder / f"{stem}_desc-confounds_timeseries.tsv",
             "events": folder / f"{stem}_events.tsv",
             "sidecar": folder / f"{stem}_{SPACE}_desc-preproc_bold.json"}
    nib.save(nib.Nifti1Image(bold.astype(np.float32), affine), paths["bold"])
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6), np.uint8), affine), paths["mask"])
    table = pd.DataFrame(motion, columns=MOTION)
    table["trans_x_derivative1"] = table["trans_x"].diff()
    table["framewise_displacement"] = np.concatenate(
        [[np.nan], np.abs(np.diff(motion, axis=0)).sum(axis=1)])
    for k in range(dummy_volumes):
        table[f"non_steady_state_outlier{k:02d}"] = (np.arange(N_VOLUMES) == k).astype(int)
    table.to_csv(paths["confounds"], sep="\t", index=False, na_rep="n/a")
    events = pd.DataFrame({"onset": ONSETS, "duration": 20.0, "trial_type": "move"})
    if rest_blocks:
        # Rest blocks between the movement blocks, all inside the scan.
        rest = ONSETS[ONSETS + 20.0 < N_VOLUMES * TR] + 20.0
        events = pd.concat([events, pd.DataFrame({"onset": rest, "duration": 20.0,
                                                  "trial_type": "rest"})])
    events.to_csv(paths["events"], sep="\t", index=False)
    paths["sidecar"].write_text(json.dumps({"RepetitionTime": TR, "SliceTimingCorrected": False}))
    return {k: str(v) for k, v in paths.items()}


def _fit(run, out, **options):
    options.setdefault("confound_columns", MOTION + ["framewise_displacement"])
    return fit_session_glm(run["bold"], run["mask"], run["confounds"], run["events"], TR, out,
                           **options)


def _data(path):
    return np.asarray(nib.load(path).dataobj, dtype=np.float64)


def test_non_steady_state_volumes_leave_through_the_sample_mask(tmp_path):
    run = _write_run(tmp_path / "func", dummy_volumes=4)
    masked = _fit(run, tmp_path / "masked")
    kept = _fit(run, tmp_path / "kept", dummy_scans=0)
    psc_masked = _data(masked["psc"])[:3].mean()
    psc_kept = _data(kept["psc"])[:3].mean()
    assert abs(psc_masked - AMPLITUDE) / AMPLITUDE < 0.05, psc_masked
    assert abs(psc_kept - AMPLITUDE) / AMPLITUDE > 0.05, psc_kept
    info = json.loads(Path(masked["info"]).read_text())
    assert info["runs"][0]["n_dummy"] == 4 and info["n_runs"] == 1
    assert len(pd.read_csv(masked["design"], sep="\t")) == N_VOLUMES - 4
    # --dummy-scans 4 says the same as fMRIPrep's columns.
    explicit = _fit(run, tmp_path / "explicit", dummy_scans=4)
    assert np.allclose(_data(explicit["psc"]), _data(masked["psc"]), atol=1e-5)


def test_confounds_read_as_nilearn_reads_them(tmp_path):
    run = _write_run(tmp_path / "func", dummy_volumes=2)
    columns = MOTION + ["framewise_displacement"]
    # With the BOLD given, nilearn's load_confounds reads the motion columns ...
    via_nilearn = read_confounds(run["confounds"], columns, N_VOLUMES, bold=run["bold"])
    # ... without it, hermesflow's reader: the same numbers.
    ours = read_confounds(run["confounds"], columns, N_VOLUMES)
    assert list(via_nilearn.sample_mask) == list(range(2, N_VOLUMES))
    np.testing.assert_allclose(via_nilearn.regressors.to_numpy(), ours.regressors.to_numpy(),
                               atol=1e-10)
    kept = ours.regressors.iloc[2:]
    assert np.abs(kept.mean()).max() < 1e-12, "demeaned over the kept volumes"
    assert ours.regressors["framewise_displacement"].notna().all()


def test_na_only_where_fmriprep_writes_it(tmp_path):
    run = _write_run(tmp_path / "func")
    table = pd.read_csv(run["confounds"], sep="\t", na_values=["n/a"])
    assert table["framewise_displacement"].isna().sum() == 1  # fMRIPrep's first row: accepted
    read_confounds(run["confounds"], ["trans_x_derivative1", "framewise_displacement"],
                   N_VOLUMES)
    table.loc[[4, 9], "trans_x"] = np.nan
    table.to_csv(run["confounds"], sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputError) as error:
        read_confounds(run["confounds"], MOTION, N_VOLUMES)
    assert str(error.value) == (
        f"{run['confounds']}: column 'trans_x' is n/a in data row(s) 5, 10 (fMRIPrep leaves "
        "only the first row of derivatives and framewise displacement empty) -- rerun fMRIPrep "
        "for this run or leave the column out of [workflow] confounds")


def test_a_model_without_confounds_needs_no_table(tmp_path):
    run = _write_run(tmp_path / "func")
    maps = fit_session_glm(run["bold"], run["mask"], None, run["events"], TR, tmp_path / "glm",
                           confound_columns=[])
    design = pd.read_csv(maps["design"], sep="\t")
    assert not set(MOTION) & set(design.columns)
    assert _data(maps["psc"])[:3].mean() == pytest.approx(AMPLITUDE, rel=0.05)
    with pytest.raises(InputError, match="no confounds table for the confounds trans_x"):
        fit_session_glm(run["bold"], run["mask"], None, run["events"], TR, tmp_path / "g2",
                        confound_columns=["trans_x"])


def test_slice_time_reference_from_fmriprep_sidecar(tmp_path):
    sidecar = tmp_path / "bold.json"
    sidecar.write_text(json.dumps({"SliceTimingCorrected": True, "StartTime": 0.9}))
    assert slice_time_reference(sidecar, 2.0) == pytest.approx(0.45)
    # Recorded, not corrected (hermesflow's native path): the middle of the acquisitions.
    sidecar.write_text(json.dumps({"SliceTimingCorrected": False, "StartTime": 0.9}))
    assert slice_time_reference(sidecar, 2.0) == pytest.approx(0.45)
    sidecar.write_text(json.dumps({"SliceTimingCorrected": False}))
    assert slice_time_reference(sidecar, 2.0) == 0.0
    sidecar.write_text(json.dumps({"SliceTimingCorrected": True}))
    with pytest.raises(InputError, match="SliceTimingCorrected is true but StartTime is missing"):
        slice_time_reference(sidecar, 2.0)
    # The design is sampled at the reference: the regressor moves by 0.45 TR.
    run = _write_run(tmp_path / "func")
    plain = pd.read_csv(_fit(run, tmp_path / "a")["design"], sep="\t")
    sidecar.write_text(json.dumps({"SliceTimingCorrected": True, "StartTime": 0.9}))
    shifted = pd.read_csv(_fit(run, tmp_path / "b", sidecar=str(sidecar))["design"], sep="\t")
    assert shifted["frame_time"].iloc[0] - plain["frame_time"].iloc[0] == pytest.approx(0.9)


def test_other_conditions_and_contrasts(tmp_path):
    run = _write_run(tmp_path / "func", rest_blocks=True)
    maps = _fit(run, tmp_path / "glm", conditions=["move", "rest"], contrast="move - rest")
    assert {"move", "rest"} <= set(pd.read_csv(maps["design"], sep="\t").columns)
    # move vs rest blocks that tile the scan: the active half still differs.
    assert _data(maps["z"])[:3].mean() > 5 and abs(_data(maps["z"])[3:].mean()) < 2
    with pytest.raises(ConfigError, match="uses grasp, not a modelled condition"):
        check_model_options(["move"], "move - grasp", -1)
    with pytest.raises(InputError, match="no 'grasp' blocks in trial_type -- label those"):
        _fit(run, tmp_path / "g2", conditions=["move", "grasp"])


def test_two_runs_combine_by_precision_weighted_fixed_effects(tmp_path):
    run1 = _write_run(tmp_path / "func", seed=1, noise=0.3)
    run2 = _write_run(tmp_path / "func", seed=2, noise=0.6, stem=STEM.replace("run-1", "run-2"))
    single = [_fit(run, tmp_path / f"run{k}") for k, run in enumerate((run1, run2), 1)]
    both = fit_session_glm([run1["bold"], run2["bold"]], [run1["mask"], run2["mask"]],
                           [run1["confounds"], run2["confounds"]],
                           [run1["events"], run2["events"]], [TR, TR], tmp_path / "both",
                           confound_columns=MOTION + ["framewise_displacement"])
    effects = [_data(s["effect"]) for s in single]
    variances = [_data(s["variance"]) for s in single]
    weights = [1 / v for v in variances]
    expected = (weights[0] * effects[0] + weights[1] * effects[1]) / (weights[0] + weights[1])
    combined, combined_var = _data(both["effect"]), _data(both["variance"])
    roi = np.zeros((6, 6, 6), bool)
    roi[:3] = True
    assert combined[roi].mean() == pytest.approx(expected[roi].mean(), rel=1e-6)
    np.testing.assert_allclose(combined, expected, rtol=1e-5)
    assert (combined_var < variances[0]).all() and (combined_var < variances[1]).all()
    # The plain mean would not do: the runs' variances differ enough to tell them apart.
    assert abs(expected[roi].mean() - np.mean(effects, axis=0)[roi].mean()) > 1e-3
    assert json.loads(Path(both["info"]).read_text())["n_runs"] == 2
    assert _data(both["psc"])[:3].mean() == pytest.approx(AMPLITUDE, rel=0.05)
