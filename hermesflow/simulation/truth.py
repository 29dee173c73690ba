"""The simulator's ground truth: where activation is placed, and what the pipeline can measure.

The pipeline measures an ROI as the mean over the Juelich map of that area thresholded at
``atlas_threshold`` percent on the GLM grid (:func:`hermesflow.roi.atlases.roi_maps`).  Were
the activation placed in exactly those voxels, the recovery tests could not see the two biases
every real study carries:

* **partial volume** -- a voxel belongs to BA4a only with the atlas's probability, the BOLD
  response spreads beyond the tissue that drives it, and the thresholded ROI therefore mixes
  active, inactive and neighbouring (BA4a next to BA4p) tissue;
* **misregistration** -- a participant's normalised motor cortex is not where the template's
  map puts it.

So the activation comes from another map.  For each area ``a`` (BA4a and BA4p, left and
right) of participant ``i`` in session ``k``::

    activation_ik(x) = sum_a A_ika * (G * p_a)(x - d_i)

``p_a`` is the Juelich probability (0-1) that ``x`` lies in area ``a``, ``G`` a Gaussian of
``truth_fwhm_mm`` and ``d_i`` the participant's displacement.  ``A_ika`` (``true_psc`` in
``truth_roi.tsv``) is the response of tissue that belongs to the area; a voxel's expected
response is that times the probability it is the area's.  The pipeline's ROI ``r`` should then
measure the mean of ``activation_ik`` over its mask (brain mask, lesion removed, as the ROI
stage does)::

    expected_psc = sum_a w_ira * A_ika,    w_ira = mean of (G * p_a)(x - d_i) over ROI r

The truth table reports every weight (``weight_mi4a_ipsi`` ... ``weight_mi4p_contra``: the
area, named relative to the lesion) and ``weight_in_roi = w_irr``, the share of its own area's
amplitude the ROI sees: on Juelich at 4-6 mm about 0.35, and with the neighbouring area
(BA4a next to BA4p) the ROI sees a bit under half of its hemisphere's activation.  The fixed
effects the ROIs can measure follow by the same weights (``expected_value`` in
``truth_params.tsv``).  Near the midline (the leg area) a displacement can carry the other
hemisphere's areas into a ROI; the weights include that too.

Defaults, and why:

* ``truth_fwhm_mm = 4``: the point-spread of gradient-echo BOLD at 3 T is of this order
  (3.5-4 mm; Parkes et al., Magn Reson Med 2005), wider than the 1 mm the maps were drawn at
  and close to the 4-6 mm voxels the simulator writes.
* ``truth_shift_mm = 2`` (s.d. per axis, so 3.2 mm from the atlas on average): the maps were
  drawn in MNI152NLin6Asym and are read on MNI152NLin2009cAsym (1-2 mm apart at the cortex),
  and a patient's nonlinear normalisation leaves a residual misfit of a few millimetres on
  top.  ``0`` turns the displacement off (the profile is then the smoothed atlas itself).
* One displacement per participant, kept over sessions: the misfit comes from the patient's
  anatomy, and each session registers the same brain to the same template.  It is drawn from
  its own random stream, so turning it on or off leaves every other draw of the trial as it is.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from hermesflow.arrays import nonzero_box
from hermesflow.derivatives.writing import write_json, write_tsv
from hermesflow.roi.atlases import load_atlas

Key = tuple[str, str]
FWHM_PER_SIGMA = np.sqrt(8 * np.log(2))


@lru_cache(maxsize=4)
def _smoothed_atlas(atlas: str, fwhm_mm: float) -> tuple[tuple[Key, ...], np.ndarray, np.ndarray]:
    """The areas' probability maps (0-1) smoothed by ``fwhm_mm``, cropped to where they are."""
    prepared = load_atlas(atlas)
    image = prepared.image
    data = np.asarray(image.dataobj, dtype=np.float32)[..., [r.index for r in prepared.regions]]
    data = data / 100.0  # prepared atlases hold percent
    voxel_mm = np.abs(np.diag(image.affine)[:3])
    sigma = fwhm_mm / FWHM_PER_SIGMA / voxel_mm
    # Crop to the areas plus four sigmas (and a voxel for the interpolation): the smoothing of
    # a 1 mm brain costs seconds, of the motor strip a fraction of one.
    box = nonzero_box(data.max(axis=-1) > 0, margin=np.ceil(4 * sigma).astype(int) + 1)
    data = data[box]
    lo = np.array([part.start for part in box])
    if fwhm_mm > 0:
        data = np.stack([ndimage.gaussian_filter(data[..., n], sigma, mode="constant")
                         for n in range(data.shape[-1])], axis=-1)
    affine = image.affine.copy()
    affine[:3, 3] = image.affine[:3, :3] @ lo + image.affine[:3, 3]
    keys = tuple(region.key for region in prepared.regions)
    return keys, np.ascontiguousarray(np.moveaxis(data, -1, 0)), affine


def activation_profiles(grid, shift_mm=(0.0, 0.0, 0.0), fwhm_mm: float = 4.0,
                        atlas: str = "juelich") -> dict[Key, np.ndarray]:
    """Each area's placed profile on ``grid``: its probability map, smoothed and displaced.

    Parameters
    ----------
    grid : TemplateGrid
        The simulator's MNI grid (``affine``, ``shape``, ``brain``).
    shift_mm : sequence of 3 floats
        Displacement (x, y, z, mm) of the participant's areas from where the atlas puts them.
    fwhm_mm : float
        Gaussian smoothing of the probability maps (0: none).

    Returns
    -------
    dict (roi, side) -> ndarray
        Values 0-1 on ``grid.shape``, zero outside the brain.
    """
    keys, maps, atlas_affine = _smoothed_atlas(atlas, float(fwhm_mm))
    ijk = np.indices(grid.shape, dtype=np.float64).reshape(3, -1)
    # The area seen at x is the atlas's at x - d.
    xyz = grid.affine[:3, :3] @ ijk + grid.affine[:3, 3:] - np.asarray(shift_mm, float)[:, None]
    to_atlas = np.linalg.inv(atlas_affine)
    src = to_atlas[:3, :3] @ xyz + to_atlas[:3, 3:]
    brain = grid.brain.ravel()
    profiles = {}
    for key, volume in zip(keys, maps, strict=True):
        values = np.zeros(brain.size, np.float32)
        values[brain] = ndimage.map_coordinates(volume, src[:, brain], order=1, cval=0.0)
        profiles[key] = values.reshape(grid.shape)
    return profiles


def roi_weights(profiles: dict[Key, np.ndarray],
                measuring: dict[Key, np.ndarray]) -> dict[Key, dict[Key, float]]:
    """``w[r][a]``: the mean of area ``a``'s profile over ROI ``r``'s measuring mask.

    A ROI with no voxel left (a lesion covering it) gets NaN weights, as its measures are NaN.
    """
    weights = {}
    for roi, mask in measuring.items():
        weights[roi] = {area: float(profile[mask].mean()) if mask.any() else np.nan
                        for area, profile in profiles.items()}
    return weights


def participant_maps(grid, lesion: np.ndarray, shift_mm, fwhm_mm: float):
    """A participant's area profiles, their weights in the pipeline's ROIs, and truth columns.

    The ROIs are measured as the pipeline measures them: ``grid.rois`` (the atlas thresholded
    on this grid) in the brain mask, with the lesion removed.
    """
    profiles = activation_profiles(grid, shift_mm, fwhm_mm)
    weights = roi_weights(profiles, {key: mask & grid.brain & ~lesion
                                     for key, mask in grid.rois.items()})
    placement = {"shift_x_mm": float(shift_mm[0]), "shift_y_mm": float(shift_mm[1]),
                 "shift_z_mm": float(shift_mm[2]), "fwhm_mm": float(fwhm_mm)}
    return profiles, weights, placement


def measurable(placed: dict[Key, float], weights: dict[Key, dict[Key, float]],
               hemi_of: dict[str, str]) -> dict[Key, dict[str, float]]:
    """What each ROI should measure given the amplitudes ``placed`` in every area.

    Returns, per ROI ``(roi, side)``: ``weight_<area>_<hemi>``, the weight of every area's
    profile in it (``hemi_of`` names a side ipsi- or contralesional); ``weight_in_roi``, its
    own area's; and ``expected_psc``, the mean placed activation over its measuring mask (the
    profiles add linearly, so it is the weighted sum of the amplitudes).
    """
    seen = {}
    for roi, w in weights.items():
        row = {"weight_in_roi": w[roi]}
        row.update({f"weight_{area}_{hemi_of[side]}": w[(area, side)] for area, side in w})
        row["expected_psc"] = sum(w[area] * value for area, value in placed.items())
        seen[roi] = row
    return seen


def session_label(months: int) -> str:
    return f"{months:02d}"


def time_profile(months, sessions) -> np.ndarray:
    """g(months): 0 at the first session, 1 at the last, log-spaced in between."""
    m0, m_last = float(sessions[0]), float(sessions[-1])
    if m_last == m0:
        return np.zeros_like(np.asarray(months, float))
    return np.log(np.asarray(months, float) / m0) / np.log(m_last / m0)


def true_parameters(spec) -> pd.DataFrame:
    """The fixed effects of ``value ~ arm * time`` (categorical time) for each ROI outcome.

    In the units of the placed amplitude (``true_psc``); what the ROIs can measure is
    ``expected_value`` (added by :func:`expected_parameters`).
    """
    g = time_profile(spec.sessions, spec.sessions)
    rows = []
    for roi in ("mi4a", "mi4p"):
        for hemi, base in (("ipsi", spec.ipsi_baseline), ("contra", spec.contra_baseline)):
            outcome = f"{roi}_{hemi}_psc"
            effect = spec.effect_size if hemi == "ipsi" else 0.0
            rows.append((outcome, "Intercept", base))
            rows.append((outcome, "arm", 0.0))
            for months, gk in zip(spec.sessions[1:], g[1:], strict=True):
                level = f"ses-{session_label(months)}"
                rows.append((outcome, f"time[{level}]", spec.time_gain * gk))
                rows.append((outcome, f"arm:time[{level}]", effect * gk))
    table = pd.DataFrame(rows, columns=["outcome", "term", "true_value"])
    table["analysis_set"] = "as_treated"
    return table


def expected_parameters(params: pd.DataFrame, truth_roi: pd.DataFrame) -> pd.DataFrame:
    """``params`` with ``expected_value``: the fixed effects as the ROIs can measure them.

    A ROI sees every area's activation with that area's weight, so each of its fixed effects
    is the weighted sum of the areas' (``sum_a w_ra * true_value_a``), at the participants'
    mean weights (one set each: one displacement, one lesion).  Exact when the weights are
    the same in every participant; otherwise the arms' mean weights differ by chance and the
    fitted terms follow them, by a few percent.
    """
    weight_columns = [c for c in truth_roi.columns if c.startswith("weight_mi")]
    per_participant = truth_roi.groupby(["roi", "hemi", "participant_id"])[weight_columns].first()
    mean = per_participant.groupby(["roi", "hemi"]).mean()
    mean.index = [f"{roi}_{hemi}_psc" for roi, hemi in mean.index]
    mean.columns = [f"{c.removeprefix('weight_')}_psc" for c in mean.columns]
    true = params.pivot(index="term", columns="outcome", values="true_value")
    expected = true[mean.columns].to_numpy() @ mean.to_numpy().T  # terms x measured outcomes
    expected = pd.DataFrame(expected, index=true.index, columns=mean.index)
    params = params.copy()
    params["expected_value"] = [expected.at[term, outcome] for term, outcome
                                in zip(params["term"], params["outcome"], strict=True)]
    return params


TRUTH_ROI_SIDECAR = {
    "true_psc": {"Description": "Amplitude placed: response of tissue belonging to the area "
                 "(percent signal change per unit of the move regressor)"},
    "shift_x_mm": {"Description": "Displacement of the participant's areas from the atlas "
                   "(registration error), x", "Units": "mm"},
    "shift_y_mm": {"Description": "As shift_x_mm, y", "Units": "mm"},
    "shift_z_mm": {"Description": "As shift_x_mm, z", "Units": "mm"},
    "fwhm_mm": {"Description": "Smoothing of the atlas's probability maps before placing",
                "Units": "mm"},
    "weight_in_roi": {"Description": "Mean of the area's placed profile (0-1) over the ROI's "
                      "measuring mask: the share of its amplitude the ROI sees"},
    "weight_mi4a_ipsi": {"Description": "Same for the ipsilesional BA4a's profile (and "
                         "weight_<area>_<hemi> for every area): what the ROI sees of it"},
    "expected_psc": {"Description": "What the pipeline should measure: the mean placed "
                     "activation over the ROI's measuring mask (atlas thresholded at "
                     "atlas_threshold, brain mask, lesion removed)"},
}


def write_truth_tables(folder: Path, truth_roi: pd.DataFrame, params: pd.DataFrame) -> None:
    """``truth_roi.tsv`` (with its sidecar) and ``truth_params.tsv`` with ``expected_value``."""
    write_tsv(folder / "truth_roi.tsv", truth_roi)
    write_json(folder / "truth_roi.json", TRUTH_ROI_SIDECAR)
    write_tsv(folder / "truth_params.tsv", expected_parameters(params, truth_roi))


def load_truth(bids_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ground-truth ROI table and parameter table of a simulated dataset."""
    folder = Path(bids_dir) / "derivatives" / "simulation"
    return (pd.read_csv(folder / "truth_roi.tsv", sep="\t"),
            pd.read_csv(folder / "truth_params.tsv", sep="\t"))
