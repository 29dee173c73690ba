"""A lesion drawn on the T1w, carried to MNI with a transform written as fMRIPrep writes it.

antspyx writes the composite ``.h5`` (``write_composite_transform=True``) that stands in for
fMRIPrep's ``from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5``; the warped mask must match
the simulator's own MNI lesion.
"""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

ants = pytest.importorskip("ants")

from hermesflow.bids.anat import find_raw_lesion  # noqa: E402
from hermesflow.errors import InputError  # noqa: E402
from hermesflow.preproc.collect import collect_session  # noqa: E402
from hermesflow.preproc.lesion import warp_lesion_to_template  # noqa: E402
from hermesflow.simulation.trial import SimulationSpec, simulate_trial  # noqa: E402

SPACE = "MNI152NLin2009cAsym"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def fmriprep_like(tmp_path_factory):
    """One simulated session whose MNI lesion mask is replaced by fMRIPrep's transform."""
    root = tmp_path_factory.mktemp("lesionwarp")
    bids = simulate_trial(root / "bids", SimulationSpec(
        participants=1, sessions=(1,), voxel_size=4.0, n_blocks=2, seed=4))
    fmriprep = bids / "derivatives" / "fmriprep"
    anat = fmriprep / "sub-01" / "ses-01" / "anat"
    truth = anat / f"sub-01_ses-01_space-{SPACE}_label-lesion_roi.nii.gz"
    moved = shutil.move(truth, root / truth.name)
    raw_t1w = bids / "sub-01" / "ses-01" / "anat" / "sub-01_ses-01_T1w.nii.gz"
    mni_t1w = anat / f"sub-01_ses-01_space-{SPACE}_desc-preproc_T1w.nii.gz"
    result = ants.registration(ants.image_read(str(mni_t1w)), ants.image_read(str(raw_t1w)),
                               type_of_transform="Rigid", write_composite_transform=True,
                               outprefix=str(root / "t1w2mni_"))
    xfm = anat / f"sub-01_ses-01_from-T1w_to-{SPACE}_mode-image_xfm.h5"
    shutil.copyfile(result["fwdtransforms"], xfm)
    return bids, fmriprep, xfm, moved


def test_the_collector_finds_fmriprep_transform(fmriprep_like):
    bids, fmriprep, xfm, _ = fmriprep_like
    session = collect_session(fmriprep, "01", "01", t_r=2.0)
    assert session.lesion_mask is None
    assert session.lesion_transforms == (str(xfm),)
    assert find_raw_lesion(bids, "01", "01").name == "sub-01_ses-01_T1w_label-lesion_roi.nii.gz"


def test_warped_lesion_matches_the_simulators_mni_lesion(fmriprep_like, tmp_path):
    bids, fmriprep, xfm, truth_path = fmriprep_like
    session = collect_session(fmriprep, "01", "01", t_r=2.0)
    out = warp_lesion_to_template(find_raw_lesion(bids, "01", "01"), session.lesion_transforms,
                                  session.mask, tmp_path / "lesion_mni.nii.gz")
    warped = np.asanyarray(nib.load(out).dataobj) > 0
    truth = np.asanyarray(nib.load(truth_path).dataobj) > 0
    assert warped.shape == nib.load(session.mask).shape
    assert truth.sum() > 20  # a lesion big enough for the Dice to mean something
    dice = _dice(warped, truth)
    assert dice >= 0.9, f"Dice {dice:.3f}"
    # A transform 12 mm off puts the mask elsewhere: the comparison can fail.
    shifted = tmp_path / "shifted.mat"
    ants.write_transform(ants.create_ants_transform(
        transform_type="AffineTransform", dimension=3, translation=(12.0, 0.0, 0.0)),
        str(shifted))
    wrong = warp_lesion_to_template(find_raw_lesion(bids, "01", "01"),
                                    [str(shifted), str(xfm)], session.mask,
                                    tmp_path / "wrong.nii.gz")
    assert _dice(np.asanyarray(nib.load(wrong).dataobj) > 0, truth) < 0.5


def test_missing_transform_is_named(fmriprep_like, tmp_path):
    bids, fmriprep, xfm, _ = fmriprep_like
    missing = xfm.with_name("sub-01_from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5")
    with pytest.raises(InputError) as error:
        warp_lesion_to_template(find_raw_lesion(bids, "01", "01"), [str(missing)],
                                str(xfm.parent.parent / "func" / "x.nii.gz"), tmp_path / "o.nii")
    assert str(error.value).startswith(f"{missing}: transform file not found -- ")
