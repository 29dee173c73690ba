"""Reprocessing with a new atlas reuses the cached GLMs and only reruns ROI extraction."""

from __future__ import annotations

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

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
    # psc_weighted weighs by the atlas's probability: 1 in a label atlas, not in Juelich's.
    new, old = new[new["measure"] != "psc_weighted"], old[old["measure"] != "psc_weighted"]
    merged = new[new["roi"] == "hand"].merge(old[old["roi"] == "mi4p"], on=keys)
    assert len(merged) == len(new[new["roi"] == "hand"]) > 0
    assert np.allclose(merged["value_x"], merged["value_y"], equal_nan=True)


# --- A custom atlas with names the code has never seen, on a finished run ---------------------

# Region names of the custom atlas: none of them appears anywhere in hermesflow.
NEVER_SEEN = {"zorblax": ("Zorblax_L", "Zorblax_R"), "quux_knob": ("lh.Quux-Knob", "rh.Quux-Knob")}
SESSIONS_DONE = "*_atlas-limbic_contrast-move_roimeasures.tsv"


def _roi_results(work):
    return {p: p.stat().st_mtime_ns for p in work.rglob("roi/result_roi.pklz")}


@pytest.fixture(scope="module")
def custom_run(effect_trial, tmp_path_factory):
    """The finished effect trial (work dir and outputs copied), run again with a new atlas."""
    root = tmp_path_factory.mktemp("custom_atlas")
    work, out = root / "work", root / "out"
    shutil.copytree(effect_trial.work, work)  # keeps mtimes: the cache stays valid
    shutil.copytree(effect_trial.out, out)
    glms = _glm_results(work)
    # Juelich's MI-4p and MI-4a on the GLM grid, under names the code has never seen.
    grid = nib.load(next(effect_trial.out.rglob("*_stat-z_statmap.nii.gz")))
    masks = roi_masks(load_atlas("juelich"), grid)
    labels = np.zeros(grid.shape, np.int16)
    for value, key in enumerate([("mi4p", "L"), ("mi4p", "R"), ("mi4a", "L"), ("mi4a", "R")], 1):
        labels[masks[key]] = value
    atlas = root / "limbic.nii.gz"
    nib.save(nib.Nifti1Image(labels, grid.affine), atlas)
    pd.DataFrame({"index": [1, 2, 3, 4], "name": [*NEVER_SEEN["zorblax"],
                                                   *NEVER_SEEN["quux_knob"]]}).to_csv(
        root / "limbic.tsv", sep="\t", index=False)
    argv = [str(effect_trial.bids), str(out), "participant", "-w", str(work), "--atlas",
            str(atlas), "--skip-bids-validation"]
    assert main(argv) == 0
    assert _glm_results(work) == glms, "no GLM was refitted"
    return root, work, out, atlas, argv, glms


def test_never_seen_regions_reach_long_and_model_tables_and_the_report(custom_run,
                                                                       effect_trial, tmp_path):
    from test_reports import CHROMIUM, _colourful, _render

    root, work, out, atlas, _, _ = custom_run
    tables = sorted(out.rglob(SESSIONS_DONE))
    assert len(tables) == effect_trial.spec.participants * len(effect_trial.spec.sessions)
    sidecar = json.loads(tables[0].with_suffix(".json").read_text())
    assert sidecar["Atlas"]["Regions"]["zorblax"]["L"] == {"Name": "Zorblax_L",
                                                            "Hemisphere": "name"}
    assert sidecar["Atlas"]["Regions"]["quux_knob"]["R"]["Name"] == "rh.Quux-Knob"
    assert len(sidecar["Atlas"]["Digest"]) == 64
    # The same voxels as Juelich's maps: the same numbers under the new names.
    new = pd.concat(pd.read_csv(p, sep="\t") for p in tables)
    old = pd.concat(pd.read_csv(p, sep="\t")
                    for p in effect_trial.out.rglob("*_atlas-juelich_*_roimeasures.tsv"))
    keys = ["participant_id", "session_id", "hemi", "measure"]
    new, old = new[new["measure"] != "psc_weighted"], old[old["measure"] != "psc_weighted"]
    for new_name, old_name in (("zorblax", "mi4p"), ("quux_knob", "mi4a")):
        merged = new[new["roi"] == new_name].merge(old[old["roi"] == old_name], on=keys)
        assert len(merged) == len(new[new["roi"] == new_name]) > 0
        assert np.allclose(merged["value_x"], merged["value_y"], equal_nan=True)

    assert main([str(effect_trial.bids), str(out), "group", "-w", str(work), "--atlas",
                 str(atlas), "--skip-bids-validation"]) == 0
    group = out / "group"
    long = pd.read_csv(group / "task-passivewrist_atlas-limbic_desc-long.tsv", sep="\t")
    models = pd.read_csv(group / "task-passivewrist_atlas-limbic_desc-mixedlm.tsv", sep="\t")
    for roi in NEVER_SEEN:
        for outcome in (f"{roi}_ipsi_psc", f"{roi}_contra_psc", f"{roi}_li"):
            assert (long["outcome"] == outcome).sum() == len(tables), outcome
            assert (models["outcome"] == outcome).any(), outcome
    assert not long["outcome"].str.startswith("mi4").any()
    # The treatment effect the simulator put in MI-4p is found under its new name.
    ipsi = models[(models["outcome"] == "zorblax_ipsi_psc") & (models["analysis_set"] == "itt")
                  & models["term"].str.startswith("arm:time[")]
    assert (ipsi["estimate"] > 0).all() and len(ipsi) == 2
    if CHROMIUM is None:
        pytest.skip("chromium not installed (.ci/setup-chromium.sh does)")
    dom, pixels = _render(tmp_path, group / "task-passivewrist_atlas-limbic_desc-report.html")
    for roi in NEVER_SEEN:
        # Every region's ipsilesional trajectory (its arm x time terms are in the forest plot).
        assert re.search(rf'<img alt="(trajectory )?{roi}_ipsi_psc"', dom), roi
    assert _colourful(pixels) > 500


def test_editing_the_atlas_in_place_reruns_roi_nodes_and_no_glm(custom_run, effect_trial):
    root, work, out, atlas, argv, glms = custom_run
    rois = _roi_results(work)
    n_sessions = effect_trial.spec.participants * len(effect_trial.spec.sessions)
    assert len(rois) >= n_sessions
    # Same file names, new content: MI-4p's regions renamed, MI-4a's dropped from the image.
    labels = np.asarray(nib.load(atlas).dataobj)
    labels[labels > 2] = 0
    nib.save(nib.Nifti1Image(labels, nib.load(atlas).affine), atlas)
    pd.DataFrame({"index": [1, 2], "name": ["Glimmer_L", "Glimmer_R"]}).to_csv(
        root / "limbic.tsv", sep="\t", index=False)
    assert main(argv) == 0
    after = _roi_results(work)
    rerun = [p for p in after if rois.get(p) != after[p]]
    assert len(rerun) == n_sessions, "every session's ROI node ran again"
    assert _glm_results(work) == glms, "and no GLM node"
    tables = pd.concat(pd.read_csv(p, sep="\t") for p in out.rglob(SESSIONS_DONE))
    assert set(tables["roi"]) == {"glimmer"}


def test_several_atlases_share_one_glm_per_session(tmp_path):
    """``--atlas`` twice: the atlas iterable sits below the GLM, which is expanded once."""
    from copy import deepcopy

    from nipype.pipeline.engine.utils import generate_expanded_graph

    from hermesflow.config import Config
    from hermesflow.workflows.session import init_session_wf

    labels = np.zeros((8, 8, 8), np.int16)
    labels[1, 1, 1], labels[6, 1, 1] = 1, 2
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "hands.nii.gz")
    pd.DataFrame({"index": [1, 2], "name": ["hand_L", "hand_R"]}).to_csv(
        tmp_path / "hands.tsv", sep="\t", index=False)
    config = Config()
    config.workflow.atlas = ["juelich", str(tmp_path / "hands.nii.gz")]
    workflow = init_session_wf(config=config)
    workflow._create_flat_graph()
    graph = generate_expanded_graph(deepcopy(workflow._graph))
    names = sorted(node.name for node in graph.nodes())
    assert names.count("glm") == 1 and names.count("gather") == 1
    assert names.count("roi") == names.count("sink") == 2
    assert names.count("session_figures") == 1, "the atlas-independent figures drawn once"
    atlases = sorted(node.inputs.atlas for node in graph.nodes() if node.name == "roi")
    assert atlases == sorted(config.workflow.atlases)
