"""The participant level through Nipype against a plain one-process script, and how it scales.

Simulates trials of three sizes (6, 12, 24 participants x 3 sessions; ``--quick``: 2, 4, 8)
and, on the middle one, times alternately:

* ``hermesflow BIDS OUT participant --nprocs 2`` (the pinned MultiProc scheduler, reports,
  sinks, up-front checks; ``--skip-bids-validation``), a fresh work dir each time;
* a one-process script of the same nilearn GLM (FirstLevelModel: Glover HRF, cosine drift,
  AR(1), the seven confounds) and ROI means of the effect map in the Juelich MI-4a/4p masks
  over the same sessions, no reports;

then reruns the pipeline on its warm work dir (nothing changed: answered from the run's record,
:mod:`hermesflow.cli.rerun`; printed too: the same rerun through Nipype's cached graph, record
removed), and runs the pipeline once on the smallest and largest trials.

Figures: participant level / script (goal <= 0.8); cached rerun / first run (<= 0.05); time
per participant, slowest / fastest of the three sizes (flat within 15 %: <= 1.15); the largest
process's peak RSS / the memory share of one worker (``--mem-gb / --nprocs``, <= 1.0).

The fixed cost of a run (start-up, imports, the atlas, pybids' index; each worker's first
imports) and the cost per added participant are printed too: at the demo's 4 mm, sessions are
so cheap that the fixed cost dominates the mean time per participant.

    python bench/bench_participant.py [--quick] [--nprocs 2] [--voxel-size 4]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import Figure, table

from hermesflow.cli.rerun import RECORD_NAME
from hermesflow.simulation.trial import SimulationSpec, simulate_trial

MEM_GB = 8.0

SCRIPT = r"""
import sys, warnings
from pathlib import Path
import nibabel as nib, numpy as np, pandas as pd
from nilearn.glm.first_level import FirstLevelModel
from hermesflow.roi.atlases import load_atlas, roi_masks

bids = Path(sys.argv[1])
prep = bids / "derivatives" / "fmriprep"
columns = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "framewise_displacement"]
masks, rows = None, []
for bold in sorted(prep.glob("sub-*/ses-*/func/*_desc-preproc_bold.nii.gz")):
    stem = bold.name.split("_space-")[0]
    func = bold.parent
    sub, ses = stem.split("_")[:2]
    confounds = pd.read_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t",
                            na_values="n/a")[columns].fillna(0.0)
    events = pd.read_csv(bids / sub / ses / "func" / f"{stem}_events.tsv", sep="\t")
    mask = next(func.glob("*_desc-brain_mask.nii.gz"))
    model = FirstLevelModel(t_r=2.0, hrf_model="glover", drift_model="cosine", high_pass=0.01,
                            noise_model="ar1", signal_scaling=False, mask_img=str(mask),
                            minimize_memory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(str(bold), events=events, confounds=confounds)
        effect = model.compute_contrast("move", output_type="effect_size")
    if masks is None:
        masks = roi_masks(load_atlas("juelich"), effect)
    data = np.asanyarray(effect.dataobj)
    rows += [(sub, ses, roi, side, float(data[m].mean())) for (roi, side), m in masks.items()]
print(len(rows))
"""


def _simulate(root: Path, participants: int, voxel_size: float, nprocs: int) -> Path:
    return simulate_trial(root / f"bids{participants}",
                          SimulationSpec(participants=participants, seed=1,
                                         voxel_size=voxel_size), n_procs=nprocs)


def _timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds of a child process, and the peak RSS (GB) of it or any descendant."""
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    wall = time.perf_counter() - start
    # RUSAGE_CHILDREN keeps the largest resident set of any reaped descendant.
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return wall, peak_gb


def _pipeline(bids: Path, out: Path, nprocs: int) -> list[str]:
    return [sys.executable, "-m", "hermesflow.cli.run", str(bids), str(out / "out"),
            "participant", "-w", str(out / "work"), "--nprocs", str(nprocs),
            "--mem-gb", str(MEM_GB), "--skip-bids-validation"]


def figures(quick: bool = False, nprocs: int = 2, repeats: int | None = None,
            voxel_size: float = 4.0) -> list[Figure]:
    sizes = (2, 4, 8) if quick else (6, 12, 24)
    repeats = repeats or (1 if quick else 2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trials = {n: _simulate(root, n, voxel_size, nprocs) for n in sizes}
        middle = sizes[1]
        pipe, script = [], []
        for repeat in range(repeats):
            run_dir = root / f"run{repeat}"
            pipe.append(_timed(_pipeline(trials[middle], run_dir, nprocs))[0])
            script.append(_timed([sys.executable, "-c", SCRIPT, str(trials[middle])])[0])
        cached = _timed(_pipeline(trials[middle], root / "run0", nprocs))[0]
        # The same rerun through the (fully cached) graph, without the run's record.
        (root / "run0" / "work" / RECORD_NAME).unlink()
        graph = _timed(_pipeline(trials[middle], root / "run0", nprocs))[0]
        per_participant = {middle: statistics.median(pipe) / middle}
        for n in (sizes[0], sizes[2]):
            per_participant[n] = _timed(_pipeline(trials[n], root / f"size{n}", nprocs))[0] / n
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    first, plain = statistics.median(pipe), statistics.median(script)
    print(f"participant level, {middle} participants x 3 sessions, {voxel_size:g} mm, "
          f"--nprocs {nprocs}: "
          f"Nipype {first:.1f} s, one-process script {plain:.1f} s, cached rerun {cached:.2f} s "
          f"(answered from the run's record; through the cached graph without it: "
          f"{graph:.1f} s, {graph / first:.3f} of the first run)")
    print("seconds per participant: " + ", ".join(
        f"{n}: {per_participant[n]:.2f}" for n in sorted(per_participant)))
    # The run's cost split into a fixed part and a part per participant (T = F + c n, from
    # the smallest and largest trials): the mean per participant is flat only when F is
    # small against c; the cost of each added participant is what grows if scaling fails.
    small, large = sizes[0], sizes[2]
    c = (per_participant[large] * large - per_participant[small] * small) / (large - small)
    fixed = per_participant[small] * small - c * small
    slope_low = (per_participant[middle] * middle - per_participant[small] * small) / (
        middle - small)
    slope_high = (per_participant[large] * large - per_participant[middle] * middle) / (
        large - middle)
    print(f"fixed cost per run {fixed:.1f} s, cost per added participant {c:.2f} s "
          f"({small}->{middle}: {slope_low:.2f} s, {middle}->{large}: {slope_high:.2f} s)")
    print(f"largest process peak RSS {peak_gb:.2f} GB")
    flat = max(per_participant.values()) / min(per_participant.values())
    share = MEM_GB / nprocs
    return [
        Figure("participant level MultiProc / one-process script", first / plain, 0.8, "<=",
               f"{middle} participants, --nprocs {nprocs}"),
        Figure("cached rerun / first run", cached / first, 0.05, "<="),
        Figure("time per participant, slowest / fastest size", flat, 1.15, "<=",
               "sizes " + ", ".join(str(n) for n in sizes)),
        Figure("peak RSS of the largest process / memory per worker", peak_gb / share, 1.0,
               "<=", f"{peak_gb:.2f} GB of {share:g} GB"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--voxel-size", type=float, default=4.0,
                        help="the simulated trial's voxel size (mm); 4 is the demo's")
    args = parser.parse_args()
    print(table(figures(quick=args.quick, nprocs=args.nprocs, voxel_size=args.voxel_size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
