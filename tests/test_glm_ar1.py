"""hermesflow's AR(1) GLM gives nilearn FirstLevelModel's maps, on simulated sessions.

The reference is nilearn itself, fitted as hermesflow fitted it before (the whole BOLD read as
float32, ``FirstLevelModel`` with the given mask, ``minimize_memory``): every map of
``fit_session_glm`` must agree with it, with and without confounds, with a sample mask, with a
slice-time reference, for OLS and AR(1), for one run and for two runs combined.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.glm import compute_fixed_effects
from nilearn.glm.contrasts import compute_contrast
from nilearn.glm.first_level import FirstLevelModel, run_glm
from nilearn.glm.first_level.first_level import _yule_walker

from hermesflow.errors import InputError
from hermesflow.glm.ar1 import ar1_coefficients, fit_glm
from hermesflow.glm.bold import open_bold, read_masked_bold
from hermesflow.glm.confounds import read_confounds
from hermesflow.glm.maps import percent_signal_change
from hermesflow.glm.model import fit_session_glm, slice_time_reference
from hermesflow.preproc.gather import gather_session
from hermesflow.simulation.trial import SimulationSpec, simulate_trial

TASK, SPACE = "passivewrist", "MNI152NLin2009cAsym"
CONFOUNDS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
             "framewise_displacement"]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> list[dict]:
    """One simulated patient, two sessions (6 mm): each session's gathered inputs."""
    root = tmp_path_factory.mktemp("ar1")
    bids = simulate_trial(root / "bids", SimulationSpec(
        participants=1, sessions=(1, 6), voxel_size=6.0, n_blocks=5, effect_size=0.8,
        seed=5))
    return [gather_session(str(bids), str(bids / "derivatives" / "fmriprep"), "01", ses, TASK,
                           SPACE) for ses in ("01", "06")]


def _first(value):
    return value[0] if isinstance(value, list) and value else value


def _nilearn_run(inputs: dict, columns: list[str], dummy_scans: int, sidecar, noise_model,
                 smoothing_fwhm=None):
    """The maps nilearn's FirstLevelModel gives for one run (hermesflow's former fit)."""
    bold, mask = _first(inputs["bold"]), _first(inputs["mask"])
    t_r = float(_first(inputs["t_r"]))
    img = nib.load(bold)
    img = nib.Nifti1Image(img.get_fdata(dtype=np.float32), img.affine, img.header)
    confounds = read_confounds(_first(inputs["confounds"]) if columns else None, columns,
                               img.shape[-1], dummy_scans=dummy_scans, bold=bold)
    events = pd.read_csv(_first(inputs["events"]), sep="\t")
    events = events[events["trial_type"] == "move"][["onset", "duration", "trial_type"]]
    model = FirstLevelModel(
        t_r=t_r, slice_time_ref=slice_time_reference(sidecar, t_r), hrf_model="glover",
        drift_model="cosine", high_pass=0.01, noise_model=noise_model, signal_scaling=False,
        mask_img=mask, minimize_memory=True, smoothing_fwhm=smoothing_fwhm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(img, events=events, confounds=confounds.regressors,
                  sample_masks=confounds.sample_mask)
    maps = model.compute_contrast("move", output_type="all")
    maps["baseline"] = model.compute_contrast("constant", output_type="effect_size")
    dof = model.results_[0][next(iter(model.results_[0]))].df_residuals
    return maps, dof, model.design_matrices_[0]


def _data(img) -> np.ndarray:
    return np.asarray(img.dataobj if isinstance(img, nib.Nifti1Image) else nib.load(img).dataobj,
                      dtype=np.float64)


def _assert_same_maps(ours: dict, reference: dict, inside: np.ndarray) -> None:
    names = {"effect": "effect_size", "variance": "effect_variance", "t": "stat", "z": "z_score",
             "baseline": "baseline"}
    for name, key in names.items():
        mine, theirs = _data(ours[name]), _data(reference[key])
        assert np.all(mine[~inside] == 0), name
        mine, theirs = mine[inside], theirs[inside]
        if name in ("t", "z"):
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5, err_msg=name)
        else:
            scale = np.abs(theirs).max()
            # float32 maps: near-zero values (cancelling runs) are compared to the scale.
            np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-6 * scale,
                                       err_msg=name)
    psc = percent_signal_change(reference["effect_size"], reference["baseline"],
                                nib.Nifti1Image(inside.astype(np.uint8), np.eye(4)))
    expected = _data(psc)[inside]
    np.testing.assert_allclose(_data(ours["psc"])[inside], expected, rtol=1e-6,
                               atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize(("columns", "dummy_scans", "start_time", "noise_model", "fwhm"), [
    (CONFOUNDS, -1, None, "ar1", None),
    ([], -1, None, "ar1", None),
    (CONFOUNDS, 3, 0.9, "ar1", None),
    (["trans_x", "framewise_displacement"], 2, 1.3, "ols", None),
    (CONFOUNDS, -1, None, "ar1", 8.0),
], ids=["confounds", "no-confounds", "dummy-scans+slice-time", "ols", "smoothed"])
def test_one_run_maps_equal_nilearns(sessions, tmp_path, columns, dummy_scans, start_time,
                                     noise_model, fwhm):
    inputs = sessions[0]
    sidecar = None
    if start_time is not None:
        sidecar = tmp_path / "bold.json"
        sidecar.write_text(json.dumps({"SliceTimingCorrected": True, "StartTime": start_time}))
    ours = fit_session_glm(inputs["bold"], inputs["mask"], inputs["confounds"], inputs["events"],
                           inputs["t_r"], tmp_path / "glm", confound_columns=columns,
                           dummy_scans=dummy_scans, sidecar=None if sidecar is None
                           else str(sidecar), noise_model=noise_model, smoothing_fwhm=fwhm)
    reference, dof, design = _nilearn_run(inputs, columns, dummy_scans, sidecar, noise_model,
                                          fwhm)
    inside = _data(_first(inputs["mask"])) > 0
    ours_design = pd.read_csv(ours["design"], sep="\t", index_col="frame_time")
    np.testing.assert_allclose(ours_design.to_numpy(), design.to_numpy(), atol=1e-12)
    assert list(ours_design.columns) == list(design.columns)
    if dummy_scans > 0:
        assert len(design) == _first_volumes(inputs) - dummy_scans
    _assert_same_maps(ours, reference, inside)
    assert dof == len(design) - np.linalg.matrix_rank(design.to_numpy())


def _first_volumes(inputs: dict) -> int:
    return nib.load(_first(inputs["bold"])).shape[-1]


def test_two_runs_combine_as_nilearns_fixed_effects(sessions, tmp_path):
    runs = [{k: _first(v) for k, v in s.items()} for s in sessions]
    ours = fit_session_glm([r["bold"] for r in runs], [r["mask"] for r in runs],
                           [r["confounds"] for r in runs], [r["events"] for r in runs],
                           [r["t_r"] for r in runs], tmp_path / "glm",
                           confound_columns=CONFOUNDS)
    fitted = [_nilearn_run(r, CONFOUNDS, -1, None, "ar1") for r in runs]
    inside = np.logical_and.reduce([_data(r["mask"]) > 0 for r in runs])
    mask = nib.Nifti1Image(inside.astype(np.uint8), nib.load(runs[0]["mask"]).affine)
    effect, variance, stat, z = compute_fixed_effects(
        [f[0]["effect_size"] for f in fitted], [f[0]["effect_variance"] for f in fitted],
        mask=mask, precision_weighted=True, dofs=[f[1] for f in fitted])
    baseline = np.mean([_data(f[0]["baseline"]) for f in fitted], axis=0)
    reference = {"effect_size": effect, "effect_variance": variance, "stat": stat,
                 "z_score": z, "baseline": nib.Nifti1Image(baseline, mask.affine)}
    assert json.loads(Path(ours["info"]).read_text())["n_runs"] == 2
    _assert_same_maps(ours, reference, inside)


def test_scaled_int16_bold_gives_the_maps_of_its_float32_copy(sessions, tmp_path):
    inputs = {k: _first(v) for k, v in sessions[0].items()}
    source = nib.load(inputs["bold"])
    assert source.get_data_dtype() == np.int16 and source.dataobj.slope != 1.0
    copy = dict(inputs, bold=str(tmp_path / Path(inputs["bold"]).name))
    values = source.get_fdata(dtype=np.float32)
    header = source.header.copy()
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(values, source.affine, header), copy["bold"])
    assert nib.load(copy["bold"]).get_data_dtype() == np.float32
    inside = _data(inputs["mask"]) > 0
    # The masked read is nibabel's float32 read of the mask's voxels, bit for bit.
    read, non_finite = read_masked_bold(open_bold(inputs["bold"]), inputs["bold"], inside)
    assert non_finite == 0
    assert np.array_equal(read, values[inside.nonzero()].T[:, _f_order(inside)])
    maps = [fit_session_glm(i["bold"], i["mask"], i["confounds"], i["events"], i["t_r"],
                            tmp_path / name, confound_columns=CONFOUNDS)
            for name, i in (("int16", inputs), ("float32", copy))]
    for name in ("effect", "variance", "t", "z", "baseline", "psc"):
        assert np.array_equal(_data(maps[0][name]), _data(maps[1][name])), name


def _f_order(inside: np.ndarray) -> np.ndarray:
    """Permutation from the C order of ``inside.nonzero()`` to the F order of the reader."""
    index = np.zeros(inside.shape, int)
    index[inside] = np.arange(inside.sum())
    return index.ravel(order="F")[inside.ravel(order="F")]


def test_ar1_coefficients_are_nilearns_binned_yule_walker():
    rng = np.random.default_rng(3)
    n, design = 80, np.column_stack([np.sin(np.arange(80) / 5), np.ones(80)])
    noise = rng.normal(size=(n, 500))
    for t in range(1, n):  # AR(1) noise with rho from -0.6 to 0.8 across voxels
        noise[t] += np.linspace(-0.6, 0.8, 500) * noise[t - 1]
    data = (100 + design @ rng.normal(size=(2, 500)) + noise).astype(np.float32)
    residuals = data - design @ (np.linalg.pinv(design) @ data)
    expected = np.trunc(_yule_walker(residuals.T, 1)[:, 0] * 100) / 100
    assert np.array_equal(ar1_coefficients(data, design), expected)
    assert len(np.unique(expected)) > 50, "the bins are exercised"


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
@pytest.mark.parametrize("design_kind", ["full-rank", "rank-deficient"])
def test_fit_equals_nilearns_run_glm(noise_model, design_kind):
    """The refit from per-voxel sums against nilearn's per-bin whitening, on a high baseline
    (10,000, noise sd 3: the sums cancel over 7 orders of magnitude) with two constant voxels;
    a rank-deficient design (a column repeated) takes nilearn's pseudo-inverse."""
    rng = np.random.default_rng(7)
    n, n_voxels = 90, 400
    task = (np.arange(n) // 10) % 2 * 1.0
    design = np.column_stack([task, np.cos(np.pi * np.arange(n) / n),
                              rng.normal(size=n) * 0.01, np.ones(n)])
    if design_kind == "rank-deficient":
        design = np.column_stack([design, design[:, 1]])
    noise = rng.normal(size=(n, n_voxels)) * 3
    for t in range(1, n):
        noise[t] += np.linspace(-0.5, 0.9, n_voxels) * noise[t - 1]
    data = (10_000 + np.outer(task, rng.normal(size=n_voxels) * 20) + noise).astype(np.float32)
    data[:, :2] = 10_000  # constant series
    vector = np.zeros(design.shape[1])
    vector[0] = 1
    ours = fit_glm(data, design, noise_model=noise_model).contrast(vector)
    labels, results = run_glm(data.astype(np.float64), design, noise_model=noise_model)
    theirs = compute_contrast(labels, results, vector)
    varying = slice(2, None)
    np.testing.assert_allclose(ours.effect[varying], theirs.effect.ravel()[varying], rtol=1e-9)
    np.testing.assert_allclose(ours.variance[varying], theirs.variance.ravel()[varying], rtol=1e-7)
    np.testing.assert_allclose(ours.z_score()[varying], theirs.z_score()[varying], atol=1e-6)
    assert ours.dof == theirs.dof
    # nilearn: rounding over a floor (|z| 0.4 to 3 here); a constant series has no effect.
    assert np.all(ours.effect[:2] == 0) and np.all(ours.z_score()[:2] == 0)


def _refusal(bold: Path, inputs: dict, tmp_path) -> str:
    """The one-line error of fitting the session's GLM on ``bold`` instead of its BOLD."""
    with pytest.raises(InputError) as error:
        fit_session_glm(str(bold), inputs["mask"], inputs["confounds"], inputs["events"],
                        inputs["t_r"], tmp_path / "glm", confound_columns=CONFOUNDS)
    return str(error.value)


def test_a_truncated_bold_is_one_line(sessions, tmp_path):
    inputs = {k: _first(v) for k, v in sessions[0].items()}
    cut = tmp_path / Path(inputs["bold"]).name
    whole = Path(inputs["bold"]).read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    assert _refusal(cut, inputs, tmp_path) == (
        f"{cut}: cannot be read as NIfTI (EOFError: Compressed file ended before the "
        "end-of-stream marker was reached) -- rerun the preprocessing of this session")


def test_non_finite_values_are_counted_over_the_whole_series(sessions, tmp_path):
    """The masked read still refuses NaN anywhere in the file, as the whole read did."""
    inputs = {k: _first(v) for k, v in sessions[0].items()}
    source = nib.load(inputs["bold"])
    values = source.get_fdata(dtype=np.float32)
    outside = np.argwhere(_data(inputs["mask"]) == 0)[0]
    values[tuple(outside)][[3, 7]] = np.nan
    values[tuple(np.argwhere(_data(inputs["mask"]) > 0)[0])][5] = np.inf
    header = source.header.copy()
    header.set_data_dtype(np.float32)
    bad = tmp_path / Path(inputs["bold"]).name
    nib.save(nib.Nifti1Image(values, source.affine, header), bad)
    assert _refusal(bad, inputs, tmp_path) == (
        f"{bad}: 3 non-finite value(s) (NaN or inf) in the BOLD series -- rerun the "
        "preprocessing of this run, or replace them before the GLM")
