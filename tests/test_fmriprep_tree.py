"""A simulated session laid out exactly as fMRIPrep 25.x lays out its outputs, with real images.

File names follow fMRIPrep's CI output list ``.circleci/ds054_outputs.txt`` (nipreps/fmriprep;
copy in ``tests/data/fmriprep/ds054_outputs.txt``): ``run-01``/``run-02``, BOLD in
``space-MNI152NLin2009cAsym_res-2`` and in ``space-T1w``, confounds without a space, the
anatomical reference at subject level (``sub-X/anat``) with its
``from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5``, and no lesion mask in MNI space (fMRIPrep
never writes one).  The images are the simulator's, so ROI values are checked against its truth.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

ants = pytest.importorskip("ants")

from hermesflow.cli.run import main  # noqa: E402
from hermesflow.errors import InputError  # noqa: E402
from hermesflow.glm.model import fit_session_glm  # noqa: E402
from hermesflow.preproc.gather import gather_session, lesion_on_bold_grid  # noqa: E402
from hermesflow.roi.measures import extract_roi_measures  # noqa: E402
from hermesflow.simulation.trial import SimulationSpec, load_truth, simulate_trial  # noqa: E402

TASK, MNI = "passivewrist", "MNI152NLin2009cAsym"
CONFOUNDS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "framewise_displacement"]


def _fmriprep_layout(bids, root):
    """Rename the simulator's outputs to fMRIPrep 25.x's names (see the module docstring)."""
    fmriprep = bids / "derivatives" / "fmriprep"
    func, anat = fmriprep / "sub-01/ses-01/func", fmriprep / "sub-01/ses-01/anat"
    old = f"sub-01_ses-01_task-{TASK}"
    raw_func = bids / "sub-01/ses-01/func"
    for run in ("01", "02"):
        new = f"sub-01_ses-01_task-{TASK}_run-{run}"
        for suffix in ("bold.nii.gz", "events.tsv"):
            shutil.copyfile(raw_func / f"{old}_{suffix}", raw_func / f"{new}_{suffix}")
        for kind in ("desc-preproc_bold.nii.gz", "desc-preproc_bold.json",
                     "desc-brain_mask.nii.gz"):
            for space in (f"space-{MNI}_res-2", "space-T1w"):
                shutil.copyfile(func / f"{old}_space-{MNI}_{kind}", func / f"{new}_{space}_{kind}")
        shutil.copyfile(func / f"{old}_desc-confounds_timeseries.tsv",
                        func / f"{new}_desc-confounds_timeseries.tsv")
    for path in [*raw_func.glob(f"{old}_*"), *func.glob(f"{old}_*")]:
        if "_run-" not in path.name:
            path.unlink()
    # fMRIPrep's anatomical reference at subject level; the MNI lesion mask is the truth only.
    subject_anat = fmriprep / "sub-01" / "anat"
    subject_anat.mkdir()
    truth_lesion = shutil.move(anat / f"sub-01_ses-01_space-{MNI}_label-lesion_roi.nii.gz",
                               root / "truth_lesion.nii.gz")
    mni_t1w = anat / f"sub-01_ses-01_space-{MNI}_desc-preproc_T1w.nii.gz"
    raw_t1w = bids / "sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz"
    result = ants.registration(ants.image_read(str(mni_t1w)), ants.image_read(str(raw_t1w)),
                               type_of_transform="Rigid", write_composite_transform=True,
                               outprefix=str(root / "t1w2mni_"))
    shutil.copyfile(result["fwdtransforms"],
                    subject_anat / f"sub-01_from-T1w_to-{MNI}_mode-image_xfm.h5")
    for path in anat.iterdir():
        shutil.move(path, subject_anat / path.name.replace("sub-01_ses-01_", "sub-01_")
                    .replace(f"space-{MNI}_", f"space-{MNI}_res-2_"))
    anat.rmdir()
    return fmriprep, truth_lesion


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmriprep_tree")
    bids = simulate_trial(root / "bids", SimulationSpec(
        participants=1, sessions=(1,), voxel_size=6.0, n_blocks=5, seed=4))
    fmriprep, truth_lesion = _fmriprep_layout(bids, root)
    return bids, fmriprep, truth_lesion, root


def test_two_runs_at_res_2_give_the_simulators_roi_values(tree, tmp_path):
    bids, fmriprep, truth_lesion, _ = tree
    inputs = gather_session(str(bids), str(fmriprep), "01", "01", TASK, f"{MNI}:res-2")
    assert inputs["run_labels"] == ["run-01", "run-02"]
    assert all(f"_space-{MNI}_res-2_" in path for path in inputs["bold"] + inputs["mask"])
    assert inputs["lesion_mask"] is None and inputs["raw_lesion"].endswith(
        "sub-01_ses-01_T1w_label-lesion_roi.nii.gz")
    assert inputs["lesion_transforms"] == [
        str(fmriprep / "sub-01/anat" / f"sub-01_from-T1w_to-{MNI}_mode-image_xfm.h5")]
    lesion = lesion_on_bold_grid(None, inputs["raw_lesion"], inputs["lesion_transforms"],
                                 inputs["mask"][0], tmp_path)
    warped = np.asarray(nib.load(lesion).dataobj) > 0
    truth = np.asarray(nib.load(truth_lesion).dataobj) > 0
    assert 2 * (warped & truth).sum() / (warped.sum() + truth.sum()) >= 0.8
    maps = fit_session_glm(inputs["bold"], inputs["mask"], inputs["confounds"],
                           inputs["events"], inputs["t_r"], tmp_path / "glm",
                           confound_columns=CONFOUNDS, sidecar=inputs["sidecar"])
    table = extract_roi_measures(maps, maps["mask"], inputs["lesion_side"], lesion_mask=lesion,
                                 space=f"{MNI}:res-2")
    measured = table[table["measure"] == "psc"].set_index(["roi", "hemi"])["value"]
    truth_roi = load_truth(bids)[0].set_index(["roi", "hemi"])["expected_psc"]
    # What each ROI can see of the placed activation; the GLM's error on a 6 mm ROI mean is
    # about 0.03 % (measured here: at most 0.022).
    for key, true in truth_roi.items():
        assert measured[key] == pytest.approx(true, abs=0.08), key
    # Without the lesion the ipsilesional ROIs keep voxels that the warped lesion removes.
    whole = extract_roi_measures(maps, maps["mask"], inputs["lesion_side"])
    n = table[table["measure"] == "n_voxels"].set_index(["roi", "hemi"])["value"]
    n_whole = whole[whole["measure"] == "n_voxels"].set_index(["roi", "hemi"])["value"]
    assert (n <= n_whole).all()


def test_two_resolutions_are_refused_with_the_documented_line(tree):
    bids, fmriprep, _, _ = tree
    func = fmriprep / "sub-01/ses-01/func"
    extra = []
    for run in ("01", "02"):
        for kind in ("desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz"):
            stem = f"sub-01_ses-01_task-{TASK}_run-{run}_space-{MNI}"
            extra.append(shutil.copyfile(func / f"{stem}_res-2_{kind}", func / f"{stem}_{kind}"))
    try:
        with pytest.raises(InputError) as error:
            gather_session(str(bids), str(fmriprep), "01", "01", TASK, MNI)
        assert str(error.value) == (
            f"{func}: several resolutions of {MNI}: space-{MNI}_res-2, space-{MNI} -- choose "
            f"one with --output-space {MNI}:res-2")
        assert len(gather_session(str(bids), str(fmriprep), "01", "01", TASK,
                                  f"{MNI}:res-2")["bold"]) == 2
    finally:
        for path in extra:
            path.unlink()


def test_a_raw_run_without_its_preprocessed_run_is_named(tree, tmp_path):
    bids, fmriprep, _, _ = tree
    copy = tmp_path / "fmriprep"
    shutil.copytree(fmriprep, copy)
    for path in (copy / "sub-01/ses-01/func").glob("*_run-02_*"):
        path.unlink()
    with pytest.raises(InputError) as error:
        gather_session(str(bids), str(copy), "01", "01", TASK, f"{MNI}:res-2")
    assert str(error.value) == (
        f"{copy / 'sub-01/ses-01/func'}: no preprocessed run for raw run-02 "
        f"(sub-01_ses-01_task-{TASK}_run-02_bold.nii.gz) -- rerun fMRIPrep on this run or leave "
        "it out with --bids-filter-file")
    # The filter file leaves run 2 out: run 1 alone is analysed.
    filters = tmp_path / "filter.json"
    filters.write_text(json.dumps({"bold": {"run": 1}}))
    inputs = gather_session(str(bids), str(copy), "01", "01", TASK, f"{MNI}:res-2",
                            bids_filter_file=str(filters))
    assert inputs["run_labels"] == ["run-01"]


def test_pipeline_on_the_tree_two_runs_and_a_t1w_space(tree, capsys, caplog):
    bids, fmriprep, _, root = tree
    out = root / "out"
    argv = [str(bids), str(out), "participant", "--fmriprep-dir", str(fmriprep),
            "--skip-bids-validation", "-w", str(root / "work")]
    assert main([*argv, "--output-space", f"{MNI}:res-2"]) == 0
    func = out / "sub-01/ses-01/func"
    (table,) = func.glob(f"*_space-{MNI}_*_roimeasures.tsv")
    assert "_res-2" not in table.name
    sidecar = json.loads(table.with_suffix(".json").read_text())
    assert sidecar["NumberOfRuns"] == 2
    report = next(table.parent.glob("*_report.html")).read_text()
    assert "Runs in the model: <b>2</b>" in report
    assert [run["n_dummy"] for run in sidecar["GLM"]["runs"]] == [0, 0]
    truth = load_truth(bids)[0].set_index(["roi", "hemi"])["expected_psc"]
    rows = pd.read_csv(table, sep="\t")
    measured = rows[rows["measure"] == "psc"].set_index(["roi", "hemi"])["value"]
    for key, true in truth.items():
        assert measured[key] == pytest.approx(true, abs=0.08), key
    # Maps in T1w space with an MNI atlas: the session's ROI step is refused in one line
    # (exit 1), and its statistical maps are written all the same.
    t1w_out = root / "out_t1w"
    status = main([str(bids), str(t1w_out), "participant", "--fmriprep-dir", str(fmriprep),
                   "--skip-bids-validation", "-w", str(root / "work_t1w"),
                   "--output-space", "T1w"])
    assert status == 1
    err = capsys.readouterr().err + caplog.text
    lines = [line for line in err.splitlines() if "sub-01 ses-01 (roi)" in line]
    assert len(lines) == 1
    assert f"atlas is in template MNI152NLin6Asym or {MNI} but the maps are in T1w" in lines[0]
    func = t1w_out / "sub-01" / "ses-01" / "func"
    for stat in ("effect", "variance", "t", "z", "psc"):
        assert (func / f"sub-01_ses-01_task-passivewrist_space-T1w_contrast-move_stat-{stat}"
                       "_statmap.nii.gz").is_file()
    assert not list(func.glob("*_roimeasures.tsv"))
