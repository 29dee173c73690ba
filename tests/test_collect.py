"""The fMRIPrep-contract collector on trees named exactly as fMRIPrep 25.x names its outputs.

The names come from fMRIPrep's own CI output lists (``.circleci/ds054_outputs.txt``,
``ds210_outputs.txt``, ``ds005_outputs.txt`` in nipreps/fmriprep; copies and provenance in
``tests/data/fmriprep/``), not from hermesflow's simulator.  The collector only reads names, so
the trees hold empty files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hermesflow.errors import InputError
from hermesflow.preproc.collect import OutputSpace, collect_session, missing_outputs

DATA = Path(__file__).parent / "data" / "fmriprep"
SPACE = "MNI152NLin2009cAsym"


def build_tree(root: Path, listing: str, session: str = "01",
               sessionwise_anat: bool = False) -> tuple[Path, str]:
    """Create fMRIPrep's listed outputs under ``root``, moved into session ``session``.

    For multi-session input fMRIPrep puts functional outputs in ``sub-X/ses-Y/func`` with a
    ``ses-Y`` entity, and the anatomical reference in ``sub-X/anat`` (in ``sub-X/ses-Y/anat``
    with ``--subject-anatomical-reference sessionwise``).
    """
    subject = None
    for line in (DATA / listing).read_text().splitlines():
        match = re.fullmatch(r"sub-([^/]+)/(anat|func)/sub-[^_]+_(.+)", line.strip())
        if not match:
            continue
        subject, datatype, rest = match.groups()
        if datatype == "func" or sessionwise_anat:
            path = root / f"sub-{subject}" / f"ses-{session}" / datatype / (
                f"sub-{subject}_ses-{session}_{rest}")
        else:
            path = root / f"sub-{subject}" / datatype / f"sub-{subject}_{rest}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert subject is not None
    return root, subject


def test_two_runs_at_res_2_are_two_runs(tmp_path):
    # ds054: run-01 and run-02 of task machinegame, in MNI152NLin2009cAsym res-2 and in T1w.
    root, subject = build_tree(tmp_path, "ds054_outputs.txt")
    session = collect_session(root, subject, "01", t_r=2.0, task="machinegame", space=SPACE)
    assert [run.label for run in session.runs] == ["run-01", "run-02"]
    for run in session.runs:
        assert f"_{run.label}_space-{SPACE}_res-2_desc-preproc_bold.nii.gz" in run.bold
        assert f"_{run.label}_space-{SPACE}_res-2_desc-brain_mask.nii.gz" in run.mask
        assert run.confounds.endswith(f"_{run.label}_desc-confounds_timeseries.tsv")
    # fMRIPrep never writes a lesion mask: its T1w -> MNI transform carries the raw one.
    assert session.lesion_mask is None
    assert session.lesion_transforms == (
        str(root / f"sub-{subject}" / "anat"
            / f"sub-{subject}_from-T1w_to-{SPACE}_mode-image_xfm.h5"),)


def test_a_filter_selects_one_run(tmp_path):
    root, subject = build_tree(tmp_path, "ds054_outputs.txt")
    session = collect_session(root, subject, "01", t_r=2.0, task="machinegame",
                              space=f"{SPACE}:res-2", run_filter={"run": "2"})
    assert [run.label for run in session.runs] == ["run-02"]
    assert session.bold.endswith(f"run-02_space-{SPACE}_res-2_desc-preproc_bold.nii.gz")


def test_echoes_are_not_runs(tmp_path):
    # ds210: echo-1..3 preprocessed in BOLD space, plus the optimally combined MNI series.
    root, subject = build_tree(tmp_path, "ds210_outputs.txt")
    session = collect_session(root, subject, "01", t_r=2.0, task="cuedSGT", space=SPACE)
    assert len(session.runs) == 1
    assert "echo-" not in Path(session.bold).name
    assert session.bold.endswith(f"run-01_space-{SPACE}_desc-preproc_bold.nii.gz")


def test_two_resolutions_need_a_choice(tmp_path):
    root, subject = build_tree(tmp_path, "ds054_outputs.txt")
    func = root / f"sub-{subject}" / "ses-01" / "func"
    for run in ("01", "02"):
        for suffix in ("desc-preproc_bold", "desc-brain_mask"):
            (func / f"sub-{subject}_ses-01_task-machinegame_run-{run}_space-{SPACE}_{suffix}"
                    ".nii.gz").touch()
    with pytest.raises(InputError) as error:
        collect_session(root, subject, "01", t_r=2.0, task="machinegame", space=SPACE)
    assert str(error.value) == (
        f"{func}: several resolutions of {SPACE}: space-{SPACE}_res-2, space-{SPACE} "
        f"-- choose one with --output-space {SPACE}:res-2")
    chosen = collect_session(root, subject, "01", t_r=2.0, task="machinegame",
                             space=OutputSpace.parse(f"{SPACE}:res-2"))
    assert all("_res-2_" in run.bold and "_res-2_" in run.mask for run in chosen.runs)


def test_sessionwise_anatomy_wins(tmp_path):
    root, subject = build_tree(tmp_path, "ds054_outputs.txt", sessionwise_anat=True)
    session = collect_session(root, subject, "01", t_r=2.0, task="machinegame", space=SPACE)
    assert session.lesion_transforms == (
        str(root / f"sub-{subject}" / "ses-01" / "anat"
            / f"sub-{subject}_ses-01_from-T1w_to-{SPACE}_mode-image_xfm.h5"),)


def test_a_session_t1w_that_is_not_the_reference_adds_its_orig_transform(tmp_path):
    root, subject = build_tree(tmp_path, "ds054_outputs.txt")
    anat = root / f"sub-{subject}" / "anat"
    orig = anat / f"sub-{subject}_ses-01_from-orig_to-T1w_mode-image_xfm.txt"
    orig.touch()
    session = collect_session(root, subject, "01", t_r=2.0, task="machinegame", space=SPACE)
    assert session.lesion_transforms == (
        str(anat / f"sub-{subject}_from-T1w_to-{SPACE}_mode-image_xfm.h5"), str(orig))


def test_a_space_fmriprep_did_not_write_is_named(tmp_path):
    # ds005 was run with surface output spaces only: no volumetric template BOLD.
    root, subject = build_tree(tmp_path, "ds005_outputs.txt")
    missing = missing_outputs(root, subject, "01", "mixedgamblestask", SPACE)
    assert missing == [f"func/sub-{subject}_ses-01_task-mixedgamblestask[_run-N]"
                       f"_space-{SPACE}_desc-preproc_bold.nii.gz"]
    root, subject = build_tree(tmp_path / "ds054", "ds054_outputs.txt")
    assert missing_outputs(root, subject, "01", "machinegame", SPACE) == []
    assert missing_outputs(root, subject, "01", "machinegame", "MNI152NLin6Asym") == [
        f"func/sub-{subject}_ses-01_task-machinegame[_run-N]"
        "_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz"]


@pytest.mark.parametrize("text, expected", [
    ("MNI152NLin2009cAsym", OutputSpace("MNI152NLin2009cAsym")),
    ("MNI152NLin2009cAsym:res-2", OutputSpace("MNI152NLin2009cAsym", "2")),
    ("T1w", OutputSpace("T1w")),
])
def test_output_space_parses_fmriprep_form(text, expected):
    assert OutputSpace.parse(text) == expected
    assert str(OutputSpace.parse(text)) == text


@pytest.mark.parametrize("text", ["MNI152NLin2009cAsym:cohort", "MNI 152", "MNI:res-"])
def test_output_space_typos_are_errors(text):
    with pytest.raises(InputError, match="output space"):
        OutputSpace.parse(text)
