"""Session GLM and ROI extraction on small generated images with known answers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from hermesflow.errors import InputError
from hermesflow.glm.model import fit_session_glm, load_confounds
from hermesflow.preproc.gather import lesion_side_from_mask
from hermesflow.roi.atlases import load_atlas, roi_masks
from hermesflow.roi.measures import extract_roi_measures
from hermesflow.simulation.images import block_regressor

TR, N_VOLUMES = 2.0, 100
ONSETS = np.arange(20.0, 200.0, 40.0)
CONFOUNDS = ["trans_x", "framewise_displacement"]


@pytest.fixture
def session(tmp_path):
    """6x6x6 voxels; the x < 3 half responds with 2 % signal change, the rest not at all."""
    rng = np.random.default_rng(0)
    regressor = block_regressor(ONSETS, 20.0, TR, N_VOLUMES)
    baseline = rng.uniform(500, 1500, (6, 6, 6))
    amplitude = np.zeros((6, 6, 6))
    amplitude[:3] = 2.0
    motion = np.cumsum(rng.normal(0, 0.05, N_VOLUMES))
    noise = rng.normal(0, 0.5, (6, 6, 6, N_VOLUMES))
    percent = amplitude[..., None] * regressor + noise + 0.8 * motion
    bold = baseline[..., None] * (1 + percent / 100)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    paths = {"bold": tmp_path / "bold.nii.gz", "mask": tmp_path / "mask.nii.gz",
             "confounds": tmp_path / "confounds.tsv", "events": tmp_path / "events.tsv"}
    nib.save(nib.Nifti1Image(bold.astype(np.float32), affine), paths["bold"])
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6), np.uint8), affine), paths["mask"])
    fd = np.concatenate([[np.nan], np.abs(np.diff(motion))])
    pd.DataFrame({"trans_x": motion, "framewise_displacement": fd, "csf": 0.0}).to_csv(
        paths["confounds"], sep="\t", index=False, na_rep="n/a")
    pd.DataFrame({"onset": ONSETS, "duration": 20.0, "trial_type": "move"}).to_csv(
        paths["events"], sep="\t", index=False)
    return {k: str(v) for k, v in paths.items()}


def test_glm_recovers_percent_signal_change(session, tmp_path):
    maps = fit_session_glm(session["bold"], session["mask"], session["confounds"],
                           session["events"], TR, tmp_path / "glm", confound_columns=CONFOUNDS)
    psc = np.asarray(nib.load(maps["psc"]).dataobj)
    z = np.asarray(nib.load(maps["z"]).dataobj)
    assert psc[:3].mean() == pytest.approx(2.0, abs=0.05)
    assert abs(psc[3:].mean()) < 0.05
    assert (z[:3] > 3.1).all()
    assert (np.abs(z[3:]) < 3.1).mean() > 0.95
    design = pd.read_csv(maps["design"], sep="\t")
    assert {"move", "trans_x", "framewise_displacement", "constant"} <= set(design.columns)
    assert "csf" not in design.columns


def test_confounds_errors_name_the_file(session):
    with pytest.raises(InputError, match=r"confounds.tsv: lacks confound column\(s\) rot_z"):
        load_confounds(session["confounds"], ["trans_x", "rot_z"], N_VOLUMES)
    with pytest.raises(InputError, match="has 100 rows for 90 BOLD volumes"):
        load_confounds(session["confounds"], CONFOUNDS, 90)
    table = load_confounds(session["confounds"], CONFOUNDS, N_VOLUMES)
    assert table.notna().all().all() and table.mean().abs().max() < 1e-12


def test_glm_refuses_events_without_move(session, tmp_path):
    pd.DataFrame({"onset": [0.0], "duration": [10.0], "trial_type": ["rest"]}).to_csv(
        session["events"], sep="\t", index=False)
    with pytest.raises(InputError, match="events.tsv: no 'move' blocks"):
        fit_session_glm(session["bold"], session["mask"], session["confounds"],
                        session["events"], TR, tmp_path, confound_columns=CONFOUNDS)


def _motor_maps(tmp_path, lesion_side):
    """Maps on a 4 mm MNI grid: psc 1.5 in the lesioned side's MI-4p, 0.5 in the other's."""
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    target = nib.Nifti1Image(np.zeros((46, 55, 46), np.float32), affine)
    masks = roi_masks(load_atlas("juelich"), target)
    other = "R" if lesion_side == "L" else "L"
    psc = np.zeros(target.shape, np.float32)
    psc[masks[("mi4p", lesion_side)]] = 1.5
    psc[masks[("mi4p", other)]] = 0.5
    z = np.where(psc > 1, 5.0, 0.0).astype(np.float32)
    paths = {}
    for name, data in {"effect": psc * 10, "psc": psc, "t": z, "z": z,
                       "mask": np.ones(target.shape, np.uint8)}.items():
        paths[name] = str(tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(data, affine), paths[name])
    return paths, masks


@pytest.mark.parametrize("lesion_side", ["L", "R"])
def test_roi_measures_relabel_hemispheres(tmp_path, lesion_side):
    paths, masks = _motor_maps(tmp_path, lesion_side)
    table = extract_roi_measures(paths, paths["mask"], lesion_side)
    values = table.set_index(["roi", "hemi", "measure"])["value"]
    assert values["mi4p", "ipsi", "psc"] == pytest.approx(1.5)
    assert values["mi4p", "contra", "psc"] == pytest.approx(0.5)
    assert values["mi4p", "ipsi", "effect"] == pytest.approx(15.0)
    assert values["mi4a", "ipsi", "psc"] == pytest.approx(0.0)
    assert values["mi4p", "ipsi", "n_voxels"] == masks[("mi4p", lesion_side)].sum()
    assert values["mi4p", "ipsi", "n_active"] == masks[("mi4p", lesion_side)].sum()
    assert values["mi4p", "bilateral", "li"] == pytest.approx(1.0)
    assert table.set_index(["roi", "hemi"]).loc[("mi4p", "ipsi"), "side"].iloc[0] == lesion_side


def test_lesion_voxels_leave_the_roi(tmp_path):
    paths, masks = _motor_maps(tmp_path, "L")
    lesion = np.zeros(masks[("mi4p", "L")].shape, np.uint8)
    hit = np.argwhere(masks[("mi4p", "L")])[:5]
    lesion[tuple(hit.T)] = 1
    lesion_path = tmp_path / "lesion.nii.gz"
    nib.save(nib.Nifti1Image(lesion, nib.load(paths["psc"]).affine), lesion_path)
    table = extract_roi_measures(paths, paths["mask"], "L", lesion_mask=str(lesion_path))
    n = table.set_index(["roi", "hemi", "measure"])["value"]["mi4p", "ipsi", "n_voxels"]
    assert n == masks[("mi4p", "L")].sum() - 5
    assert lesion_side_from_mask(lesion_path) == "L"
