"""Simulate a whole cell-therapy trial as BIDS, with fMRIPrep derivatives and ground truth.

``simulate_trial(OUT)`` writes

* ``OUT/``: raw BIDS (participants.tsv, sessions.tsv with clinical scores, T1w, lesion masks,
  passive-wrist BOLD with events and sidecars, ``phenotype/adverse_events.tsv``);
* ``OUT/derivatives/fmriprep/``: what fMRIPrep would have written (MNI152NLin2009cAsym BOLD,
  brain mask, confounds with fMRIPrep column names, lesion mask in MNI);
* ``OUT/derivatives/simulation/``: the ground truth (``truth_roi.tsv``: per subject x session x
  ROI x hemisphere the amplitude placed, the displacement and smoothing of the map it was placed
  in, and the value the pipeline's ROI should measure; ``truth_params.tsv``: the true fixed
  effects, placed and measurable).  Activation is not placed in the ROIs the pipeline measures
  with: see :mod:`hermesflow.simulation.truth`.

The truth model, per ROI and hemisphere (ipsilesional maps carry the treatment effect)::

    psc = b0 + g(months) * (time_gain + effect_size * treated) + u_subject + e_session

with ``g(months) = log(months / m0) / log(m_last / m0)`` (0 at the first session, 1 at the
last).  Coded as the group model codes it (categorical time, first session and control arm as
reference, ``treated`` as the arm indicator), the true fixed effects are ``Intercept = b0``,
``arm = 0``, ``time[ses-X] = time_gain * g``, ``arm:time[ses-X] = effect_size * g``.  These
are exact for the as-treated analysis; the intention-to-treat contrast is diluted by patients
randomised to cells who were not treated (``treated_fraction``).  They are in units of the
placed amplitude; ``expected_value`` is what the ROIs can see of them (through the weights of
the placed maps in the measuring masks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hermesflow.derivatives.description import dataset_description, hermesflow_generated_by
from hermesflow.derivatives.writing import write_json, write_text, write_tsv
from hermesflow.errors import ConfigError
from hermesflow.preproc.confounds import confounds_table
from hermesflow.simulation import head as simhead
from hermesflow.simulation import images as simimage
from hermesflow.simulation.adverse_events import preset_adverse_events, write_adverse_events
from hermesflow.simulation.images import BoldSpec, write_nifti  # fast gzip level
from hermesflow.simulation.pool import map_participants
from hermesflow.simulation.truth import (
    load_truth,
    measurable,
    participant_maps,
    session_label,
    time_profile,
    true_parameters,
    write_truth_tables,
)

TASK = "passivewrist"
SPACE = "MNI152NLin2009cAsym"
HEMI_NAMES = {"ipsi": "ipsilesional", "contra": "contralesional"}

# Baseline (first session) levels and the per-unit-of-g changes of the clinical scores:
# (mean at baseline, change by last session in controls, extra change by last session in treated
# patients per unit effect size, between-subject s.d., within-subject s.d., min, max, step).
CLINICAL = {
    "barthel": (55.0, 20.0, 10.0, 12.0, 5.0, 0, 100, 5),
    "nihss": (9.0, -3.0, -2.0, 2.5, 1.0, 0, 42, 1),
    "nihss_motor": (5.0, -1.5, -1.5, 1.2, 0.6, 0, 16, 1),
    "mrs": (3.2, -0.6, -0.5, 0.6, 0.4, 0, 6, 1),
    "fm_motor": (45.0, 12.0, 8.0, 12.0, 3.0, 0, 100, 1),
}
ADVERSE_EVENTS = (
    ("headache", False), ("fever", False), ("fatigue", False),
    ("urinary tract infection", False), ("fall", False),
    ("pneumonia", True), ("recurrent stroke", True),
)


@dataclass
class SimulationSpec:
    """Sizes and effect of a simulated trial (defaults: small enough for the demo)."""

    participants: int = 12
    sessions: tuple[int, ...] = (1, 6, 24)
    effect_size: float = 0.5
    seed: int = 0
    voxel_size: float = 4.0
    tr: float = 2.0
    block_s: float = 20.0
    n_blocks: int = 6
    treated_fraction: float = 0.9
    dropout: float = 0.0
    # Activation, in percent signal change per unit regressor.
    ipsi_baseline: float = 0.8
    contra_baseline: float = 0.6
    time_gain: float = 0.3
    subject_sd: float = 0.3
    session_sd: float = 0.1
    noise_sd: float = 1.0
    # Where the activation lies (simulation/truth.py): the Juelich maps smoothed by this FWHM
    # and displaced per participant by N(0, truth_shift_mm) mm per axis; the pipeline's ROIs are
    # the maps thresholded at atlas_threshold percent.
    truth_fwhm_mm: float = 4.0
    truth_shift_mm: float = 2.0
    atlas_threshold: float = 25.0
    # What scanners write (off by default, default outputs unchanged): simulation/head.py.
    skull: bool = False
    t1w_voxel_size: float = 2.0
    oblique: bool = False
    oblique_deg: float = 15.0
    # Adverse events per participant over the planned follow-up and the share in the first
    # 180 days (simulation/adverse_events.py); None: the simulator's own rates and draws.
    ae_rate_treated: float | None = None
    ae_rate_control: float | None = None
    ae_early_fraction: float | None = None

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse, in one line, a repetition time the block design cannot be sampled with and
        negative truth-map options."""
        if not self.tr > 0 or self.tr > self.block_s:
            raise ConfigError(
                f"repetition time {self.tr:g} s: must be positive and no longer than a "
                f"{self.block_s:g} s block -- choose e.g. --tr 2")
        if self.truth_shift_mm < 0 or self.truth_fwhm_mm < 0:
            raise ConfigError("truth_shift_mm and truth_fwhm_mm must be >= 0 (0 turns them off)")

    @property
    def n_volumes(self) -> int:
        """Volumes that cover the block design (move/rest pairs) at this repetition time."""
        return int(round(2 * self.n_blocks * self.block_s / self.tr))

    @property
    def onsets(self) -> np.ndarray:
        return self.block_s + 2 * self.block_s * np.arange(self.n_blocks)


def _participants(spec: SimulationSpec, rng) -> pd.DataFrame:
    n = spec.participants
    # 2:1 randomisation in permuted blocks of three.
    arms = np.concatenate([rng.permutation(["msc", "msc", "control"]) for _ in range(-(-n // 3))])
    arms = arms[:n]
    treated = np.where(
        (arms == "msc") & (rng.random(n) < spec.treated_fraction), "yes", "no"
    )
    return pd.DataFrame({
        "participant_id": [f"sub-{i + 1:02d}" for i in range(n)],
        "arm": arms,
        "treated": treated,
        # The randomisation as drawn: the block each participant was allocated in.
        "block": np.arange(n) // 3 + 1,
        "age": rng.integers(35, 81, n),
        "sex": rng.choice(["F", "M"], n),
        "lesion_side": rng.choice(["L", "R"], n),
    })


def _clinical_scores(treated: bool, g: np.ndarray, effect: float, rng) -> dict[str, np.ndarray]:
    scores = {}
    for name, (base, change, extra, between, within, low, high, step) in CLINICAL.items():
        trajectory = base + rng.normal(0, between) + g * (change + effect * extra * treated)
        values = trajectory + rng.normal(0, within, len(g))
        scores[name] = np.clip(np.round(values / step) * step, low, high).astype(int)
    return scores


def _events(spec: SimulationSpec) -> pd.DataFrame:
    return pd.DataFrame({
        "onset": spec.onsets,
        "duration": spec.block_s,
        "trial_type": "move",
    })


def _dataset_description(name: str, derivative: str | None = None) -> dict:
    if derivative is None:
        return dataset_description(name, raw=True, License="CC0",
                                   Authors=["hermesflow simulator"])
    return dataset_description(name, License="CC0", generated_by=[hermesflow_generated_by(
        derivative, "Simulated by hermesflow; not produced by the named tool.")])


def _write_top_level(out: Path, spec: SimulationSpec, participants: pd.DataFrame) -> None:
    write_json(out / "dataset_description.json", _dataset_description("Simulated MSC stroke trial"))
    write_text(out / "README",
        "Simulated randomised trial of intravenous mesenchymal stem cells after ischaemic "
        "stroke, written by `hermesflow simulate`.\nGround truth: derivatives/simulation/.\n"
    )
    # Lesion masks follow fMRIPrep's convention, which BIDS does not define; adverse events
    # have several rows per participant, which BIDS phenotype tables do not allow.
    write_text(out / ".bidsignore", "*_label-lesion_roi.nii.gz\nphenotype/adverse_events.*\n")
    write_tsv(out / "participants.tsv", participants)
    write_json(out / "participants.json", {
        "arm": {"Description": "Randomised arm", "Levels": {
            "msc": "intravenous mesenchymal stem cells", "control": "standard care"}},
        "treated": {"Description": "Received the cells (as-treated)", "Levels": {
            "yes": "received", "no": "not received"}},
        "age": {"Description": "Age at stroke", "Units": "year"},
        "sex": {"Description": "Sex", "Levels": {"F": "female", "M": "male"}},
        "block": {"Description": "Randomisation block (permuted blocks of three, 2:1 "
                           "cells:control)"},
        "lesion_side": {"Description": "Hemisphere of the ischaemic lesion", "Levels": {
            "L": "left", "R": "right"}},
    })
    write_json(out / f"task-{TASK}_bold.json", {
        "TaskName": TASK,
        "RepetitionTime": spec.tr,
        "TaskDescription": "Passive flexion-extension of the paretic wrist, "
                           f"{spec.block_s:g} s move / {spec.block_s:g} s rest.",
    })
    write_json(out / f"task-{TASK}_events.json", {
        "trial_type": {"Description": "Block type", "Levels": {"move": "passive wrist movement"}},
    })


def _sessions_sidecar() -> dict:
    sidecar = {"months": {"Description": "Time since stroke", "Units": "month"}}
    descriptions = {
        "barthel": "Barthel index (0-100, higher is better)",
        "nihss": "NIH stroke scale (0-42, lower is better)",
        "nihss_motor": "Motor items of the NIHSS (5a, 5b, 6a, 6b; 0-16)",
        "mrs": "modified Rankin scale (0-6, lower is better)",
        "fm_motor": "Fugl-Meyer motor score (0-100, higher is better)",
    }
    sidecar.update({key: {"Description": text} for key, text in descriptions.items()})
    return sidecar


def simulate_trial(out_dir: str | Path, spec: SimulationSpec | None = None, *,
                   n_procs: int = 1, **options) -> Path:
    """Write a simulated trial to ``out_dir`` and return it.

    Parameters
    ----------
    out_dir : path
        Created if needed; must not already hold a dataset.
    spec : SimulationSpec, optional
        Sizes and effects; keyword ``options`` override its fields.
    n_procs : int
        Participants simulated side by side (:mod:`hermesflow.simulation.pool`); the data do
        not depend on it.

    Returns
    -------
    Path
        ``out_dir``.  Same spec and seed give the same bytes.
    """
    spec = spec or SimulationSpec()
    for key, value in options.items():
        setattr(spec, key, value)
    spec.check()
    spec.sessions = tuple(sorted(int(s) for s in spec.sessions))
    out = Path(out_dir)
    if (out / "dataset_description.json").exists():
        raise FileExistsError(f"{out}: already holds a dataset -- choose an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    # The last stream draws only the displacements: the others are as without them.
    seeds = np.random.SeedSequence(spec.seed).spawn(spec.participants + 2)
    trial_rng = np.random.default_rng(seeds[0])
    participants = _participants(spec, trial_rng)
    shifts = np.random.default_rng(seeds[-1]).normal(0.0, spec.truth_shift_mm,
                                                     (spec.participants, 3))
    grid = simimage.make_grid(spec.voxel_size, threshold=spec.atlas_threshold)
    bold_spec = BoldSpec(spec.tr, spec.n_volumes, spec.onsets, spec.block_s, spec.noise_sd)
    g_all = time_profile(spec.sessions, spec.sessions)
    head_grid = simhead.make_head_grid(spec.t1w_voxel_size) if spec.skull else None

    _write_top_level(out, spec, participants)
    fmriprep = out / "derivatives" / "fmriprep"
    write_json(fmriprep / "dataset_description.json",
               _dataset_description("fMRIPrep (simulated)", "fMRIPrep"))
    subjects = list(participants.itertuples(index=False))

    def participant(index: int) -> tuple[list[dict], list[dict]]:
        """Simulate and write one participant; return its truth and adverse-event rows."""
        subject, truth_rows = subjects[index], []
        rng = np.random.default_rng(seeds[index + 1])
        sub = subject.participant_id
        treated = subject.treated == "yes"
        keep = np.ones(len(spec.sessions), bool)
        if spec.dropout > 0:
            # Dropout after the first session: later sessions are lost from that point on.
            dropped_from = rng.integers(1, len(spec.sessions) + 1)
            if rng.random() < spec.dropout:
                keep[dropped_from:] = False
        radius = rng.uniform(6, 14)
        anatomy = simhead.skull_anatomy(head_grid, subject.lesion_side, radius, rng, spec, index)
        lesion = simimage.lesion_mask(grid, subject.lesion_side, radius, rng)
        head = simimage.rigid_matrix(np.concatenate([rng.normal(0, 4, 3), rng.normal(0, 0.05, 3)]))
        scores = _clinical_scores(treated, g_all, spec.effect_size, rng)
        subject_effect = rng.normal(0, spec.subject_sd, (2, 2))  # roi x hemi
        profiles, weights, placement = participant_maps(grid, lesion, shifts[index],
                                                        spec.truth_fwhm_mm)
        session_rows = []
        for k, months in enumerate(spec.sessions):
            ses = f"ses-{session_label(months)}"
            if not keep[k]:
                continue
            session_rows.append({"session_id": ses, "months": months,
                                 **{name: int(v[k]) for name, v in scores.items()}})
            placed, rows = {}, []
            for r, roi in enumerate(("mi4a", "mi4p")):
                for h, hemi in enumerate(("ipsi", "contra")):
                    side = subject.lesion_side if hemi == "ipsi" else (
                        "R" if subject.lesion_side == "L" else "L")
                    base = spec.ipsi_baseline if hemi == "ipsi" else spec.contra_baseline
                    slope = spec.time_gain + (spec.effect_size * treated if hemi == "ipsi" else 0)
                    value = (base + g_all[k] * slope + subject_effect[r, h]
                             + rng.normal(0, spec.session_sd))
                    placed[(roi, side)] = value
                    rows.append({"participant_id": sub, "session_id": ses, "months": months,
                                 "roi": roi, "hemi": hemi, "side": side, "true_psc": value,
                                 **placement})
            amplitude = sum(value * profiles[key] for key, value in placed.items())
            seen = measurable(placed, weights, {row["side"]: row["hemi"] for row in rows})
            truth_rows += [{**row, **seen[(row["roi"], row["side"])]} for row in rows]
            _write_session(out, fmriprep, grid, sub, ses, amplitude, lesion, head,
                           bold_spec, spec, rng,
                           anatomy=anatomy, oblique=spec.oblique and k % 2 == 0)
        write_tsv(out / sub / f"{sub}_sessions.tsv", pd.DataFrame(session_rows))
        return truth_rows, _adverse_events(sub, treated, spec.sessions, keep, rng, spec)

    results = map_participants(participant, len(subjects), n_procs)
    truth_rows = [row for rows, _ in results for row in rows]
    events_rows = [row for _, rows in results for row in rows]
    write_json(out / "sessions.json", _sessions_sidecar())
    write_adverse_events(out, events_rows)
    _write_truth(out, spec, truth_rows)
    return out


def _write_session(out, fmriprep, grid, sub, ses, amplitude, lesion, head, bold_spec, spec, rng,
                   *, anatomy=None, oblique=False):
    prefix = f"{sub}_{ses}"
    func = out / sub / ses / "func"
    gain = rng.uniform(0.8, 1.25)
    motion = simimage.head_motion(spec.n_volumes, rng)
    series = simimage.simulate_bold(grid, amplitude, motion, gain, bold_spec, rng)
    scanner = spec.oblique_deg if oblique else 0.0

    # Raw data, in the subject's native (scanner) space.
    t1w = grid.t1w * np.where(lesion, 0.5, 1.0)
    simhead.write_raw_anatomy(out, sub, ses, grid, t1w, lesion, head, scanner, anatomy)
    raw = simimage.native_bold(series, grid.affine, head, motion)
    raw_img = simhead.scanner_image(raw.astype(np.int16), grid.affine, scanner)
    raw_img.header.set_zooms(raw_img.header.get_zooms()[:3] + (spec.tr,))
    write_nifti(func / f"{prefix}_task-{TASK}_bold.nii.gz", raw_img)
    write_tsv(func / f"{prefix}_task-{TASK}_events.tsv", _events(spec))

    # What fMRIPrep would write from it.
    fanat, ffunc = fmriprep / sub / ses / "anat", fmriprep / sub / ses / "func"
    space = f"space-{SPACE}"
    write_nifti(fanat / f"{prefix}_{space}_desc-preproc_T1w.nii.gz", grid.image(t1w, np.float32))
    write_nifti(fanat / f"{prefix}_{space}_desc-brain_mask.nii.gz", grid.image(grid.brain, np.uint8))
    write_nifti(fanat / f"{prefix}_{space}_label-lesion_roi.nii.gz", grid.image(lesion, np.uint8))
    bold_img = grid.image(series, np.float32)
    bold_img.set_data_dtype(np.int16)  # scaled by nibabel; a quarter of float32 once gzipped
    bold_img.header.set_zooms(bold_img.header.get_zooms()[:3] + (spec.tr,))
    stem = f"{prefix}_task-{TASK}"
    write_nifti(ffunc / f"{stem}_{space}_desc-preproc_bold.nii.gz", bold_img)
    write_json(ffunc / f"{stem}_{space}_desc-preproc_bold.json",
               {"RepetitionTime": spec.tr, "TaskName": TASK, "SkullStripped": False})
    write_nifti(ffunc / f"{stem}_{space}_desc-brain_mask.nii.gz", grid.image(grid.brain, np.uint8))
    write_tsv(ffunc / f"{stem}_desc-confounds_timeseries.tsv",
              confounds_table(motion, series[grid.brain].mean(axis=0)))


def _adverse_events(sub, treated, sessions, keep, rng, spec=None) -> list[dict]:
    if spec is not None and spec.ae_rate_treated is not None:
        return preset_adverse_events(sub, treated, sessions, keep, rng, spec, ADVERSE_EVENTS)
    rows = []
    last = sessions[int(np.flatnonzero(keep)[-1])]
    for _ in range(rng.poisson(1.8 if treated else 1.3)):
        event, serious = ADVERSE_EVENTS[rng.integers(len(ADVERSE_EVENTS))]
        if treated and rng.random() < 0.2:
            event, serious = "fever", False
        day = int(rng.integers(1, int(last * 30.4) + 1))
        rows.append({"participant_id": sub, "day": day, "event": event,
                     "serious": "yes" if serious else "no"})
    return rows


def _write_truth(out: Path, spec: SimulationSpec, truth_rows: list[dict]) -> None:
    folder = out / "derivatives" / "simulation"
    write_json(folder / "dataset_description.json",
               _dataset_description("hermesflow simulation ground truth", "hermesflow"))
    write_truth_tables(folder, pd.DataFrame(truth_rows), true_parameters(spec))
    spec_dict = asdict(spec)
    spec_dict["sessions"] = list(spec.sessions)
    simhead.drop_unused_options(spec_dict)
    for key in ("ae_rate_treated", "ae_rate_control", "ae_early_fraction"):
        if spec_dict[key] is None:  # recorded only when a preset set them
            spec_dict.pop(key)
    write_json(folder / "simulation.json", spec_dict)


__all__ = ["SimulationSpec", "simulate_trial", "load_truth", "true_parameters"]
