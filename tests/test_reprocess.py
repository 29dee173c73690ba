"""Reprocessing with a new atlas reuses the cached GLMs and only reruns ROI extraction."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.cli.run import main
from hermesflow.roi.atlases import load_atlas, roi_masks


def _glm_results(work):
    return {p: p.stat().st_mtime_ns for p in work.rglob("glm/result_glm.pklz")}


def test_new_atlas_reuses_cached_glms(effect_trial, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(effect_trial.work, work)  # keeps mtimes: the cache stays valid
    before = _glm_results(work)
    assert len(before) == effect_trial.spec.participants * len(effect_trial.spec.sessions)

    # A label atlas holding exactly Juelich's MI-4p on the GLM grid, under another name.
    statmap = next(effect_trial.out.rglob("*_stat-z_statmap.nii.gz"))
    grid = nib.load(statmap)
    masks = roi_masks(load_atlas("juelich"), grid)
    labels = np.zeros(grid.shape, np.int16)
    labels[masks[("mi4p", "L")]] = 1
    labels[masks[("mi4p", "R")]] = 2
    atlas = tmp_path / "hand_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, grid.affine), atlas)
    pd.DataFrame({"index": [1, 2], "roi": ["hand", "hand"], "hemi": ["L", "R"]}).to_csv(
        tmp_path / "hand_dseg.tsv", sep="\t", index=False)

    out = tmp_path / "out"
    assert main([str(effect_trial.bids), str(out), "participant", "-w", str(work),
                 "--atlas", str(atlas), "--skip-bids-validation"]) == 0
    assert _glm_results(work) == before, "no GLM was refitted"
    new = pd.concat(pd.read_csv(p, sep="\t") for p in out.rglob("*_atlas-handdseg_*.tsv"))
    old = pd.concat(pd.read_csv(p, sep="\t")
                    for p in effect_trial.out.rglob("*_atlas-juelich_*_roimeasures.tsv"))
    keys = ["participant_id", "session_id", "hemi", "measure"]
    merged = new[new["roi"] == "hand"].merge(old[old["roi"] == "mi4p"], on=keys)
    assert len(merged) == len(new[new["roi"] == "hand"]) > 0
    assert np.allclose(merged["value_x"], merged["value_y"], equal_nan=True)
