"""Native preprocessing against antspyx's defaults: wall time and peak memory, same run.

Simulates one session with a skull-on T1w (``--t1w-voxel-size``, 1 mm-class by default) and a
BOLD run of 120 volumes, then runs, each in a fresh process (so peak memory is its own):

* native: :func:`hermesflow.preproc.native.run_native_session` (brain extraction, motion,
  BOLD -> T1w, SyN T1w -> MNI lesion-masked, one-shot resampling, confounds, writing);
* baseline at antspyx's defaults: ``ants.motion_correction``, ``ants.registration`` Rigid
  BOLD -> T1w and SyN T1w -> MNI, ``ants.apply_transforms`` on the 4D series.

Figures: native / baseline wall time (goal <= 0.35); native peak memory in GB (goal <= 1.2);
lowest per-axis motion correlation with the truth (goal >= 0.99).  Machines are shared: read
the ratio, not the seconds.

    python bench/bench_native.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from figures import Figure, table

from hermesflow.preproc.confounds import MOTION_COLUMNS
from hermesflow.simulation.trial import simulate_trial

TASK = "passivewrist"

_NATIVE = """
import json, resource, sys, time
from hermesflow.preproc.native import run_native_session
start = time.perf_counter()
result = run_native_session(sys.argv[1], sys.argv[2], "01", "01", task="passivewrist")
print(json.dumps({"seconds": time.perf_counter() - start, "confounds": result.confounds,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

_BASELINE = """
import json, resource, sys, time
import ants
from hermesflow.templates import template_path
bold_file, t1w_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
bold = ants.image_read(bold_file)
motion = ants.motion_correction(bold)
boldref = ants.get_average_of_timeseries(motion["motion_corrected"])
t1w = ants.image_read(t1w_file)
bold2t1w = ants.registration(t1w, boldref, "Rigid")
template = ants.image_read(str(template_path()))
t1w2mni = ants.registration(template, t1w, "SyN")
warped = ants.apply_transforms(template, motion["motion_corrected"],
                               t1w2mni["fwdtransforms"] + bold2t1w["fwdtransforms"], imagetype=3)
ants.image_write(warped, out)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _run(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def figures(quick: bool = False, voxel_size: float = 3.0, t1w_voxel_size: float = 1.0
            ) -> list[Figure]:
    """Native vs antspyx-default preprocessing of one simulated session."""
    if quick:
        voxel_size, t1w_voxel_size = 6.0, 2.0
    with tempfile.TemporaryDirectory(prefix="bench-native-") as tmp:
        root = Path(tmp)
        bids = simulate_trial(root / "bids", participants=1, sessions=(1,),
                              voxel_size=voxel_size, n_blocks=3 if quick else 6,
                              block_s=20.0 if quick else 20.0, seed=4, skull=True,
                              t1w_voxel_size=t1w_voxel_size)
        session = bids / "sub-01" / "ses-01"
        bold = session / "func" / f"sub-01_ses-01_task-{TASK}_bold.nii.gz"
        t1w = session / "anat" / "sub-01_ses-01_T1w.nii.gz"
        native = _run(_NATIVE, str(bids), str(root / "native"))
        baseline = _run(_BASELINE, str(bold), str(t1w), str(root / "baseline.nii.gz"))
        truth = pd.read_csv(next((bids / "derivatives" / "fmriprep").rglob(
            "*_desc-confounds_timeseries.tsv")), sep="\t")
        found = pd.read_csv(native["confounds"], sep="\t")
        r = min(np.corrcoef(truth[c], found[c])[0, 1] for c in MOTION_COLUMNS)
        import nibabel as nib

        shape = nib.load(str(bold)).shape
        t1w_shape = nib.load(str(t1w)).shape
    note = (f"BOLD {shape}, T1w {t1w_shape}; native {native['seconds']:.0f} s, "
            f"baseline {baseline['seconds']:.0f} s, {baseline['peak_kb'] / 1e6:.2f} GB")
    return [
        Figure("native preprocessing time / antspyx defaults", native["seconds"]
               / baseline["seconds"], 0.35, "<=", note),
        Figure("native preprocessing peak memory (GB)", native["peak_kb"] / 1e6, 1.2, "<=",
               "ru_maxrss of its own process"),
        Figure("native motion r with the truth (lowest axis)", r, 0.99, ">=", ""),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(table(figures(quick=args.quick)))
