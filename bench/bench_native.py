"""Native preprocessing against antspyx's defaults: wall time and peak memory, same run.

Simulates one session with a skull-on T1w (``--t1w-voxel-size``, 1 mm-class by default) and a
BOLD run of 120 volumes, then runs, each in a fresh process (so peak memory is its own):

* native: :func:`hermesflow.preproc.native.run_native_session` (brain extraction, motion,
  BOLD -> T1w, SyN T1w -> MNI lesion-masked, one-shot resampling, confounds, writing);
* baseline at antspyx's defaults: ``ants.motion_correction``, ``ants.registration`` Rigid
  BOLD -> T1w and SyN T1w -> MNI, ``ants.apply_transforms`` on the 4D series.

Figures: native / baseline wall time and CPU time (goal <= 0.35); native peak memory in GB
(goal <= 1.2); lowest per-axis motion correlation with the truth (goal >= 0.99).  Machines
are shared: read the ratios, not the seconds; pin threads (``OMP_NUM_THREADS=1
ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1``) so the CPU-time ratio is the idle machine's.

    python bench/bench_native.py [--quick] [--parallel]
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

# The peak resident memory of the process's own address space.  Not ru_maxrss: Linux keeps
# the forking parent's high-water mark in it across fork + exec (both children of the first
# full-size run reported the driver's 3.27 GB).
_PEAK = """
def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
"""

_NATIVE = _PEAK + """
import json, logging, resource, sys, time
from hermesflow.preproc.native import run_native_session
# Each step's start on stderr (passed through): where the time goes.
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(relativeCreated)8.0f ms %(name)s %(message)s")
start, cpu0 = time.perf_counter(), sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
result = run_native_session(sys.argv[1], sys.argv[2], "01", "01", task="passivewrist")
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - start, "confounds": result.confounds,
                  "cpu": usage.ru_utime + usage.ru_stime - cpu0, "peak_kb": peak_kb()}))
"""

_BASELINE = _PEAK + """
import json, resource, sys, time
import ants
from hermesflow.templates import template_path
bold_file, t1w_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
start, cpu0 = time.perf_counter(), sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
bold = ants.image_read(bold_file)
motion = ants.motion_correction(bold)
boldref = ants.get_average_of_timeseries(motion["motion_corrected"])
t1w = ants.image_read(t1w_file)
bold2t1w = ants.registration(t1w, boldref, "Rigid")
template = ants.image_read(str(template_path()))
t1w2mni = ants.registration(template, t1w, "SyN")
# Written at the BOLD voxel size, as the native route writes it: 120 volumes on the 1 mm
# template grid need over 23 GB (the kernel killed the first full-size run).
grid = ants.resample_image(template, bold.spacing[:3], False, 0)
warped = ants.apply_transforms(grid, motion["motion_corrected"],
                               t1w2mni["fwdtransforms"] + bold2t1w["fwdtransforms"], imagetype=3)
ants.image_write(warped, out)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "cpu": usage.ru_utime + usage.ru_stime - cpu0, "peak_kb": peak_kb()}))
"""


def _start(script: str, *args: str) -> subprocess.Popen:
    # stderr to a file, not a pipe: a child left running (``--parallel``) must not block on
    # a full pipe nobody reads yet.
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by _result)
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                               stderr=log, text=True)
    process.log = log
    return process


def _result(process: subprocess.Popen) -> dict:
    out, _ = process.communicate()
    process.log.seek(0)
    err = process.log.read()
    process.log.close()
    sys.stderr.write(err)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, process.args, out, err)
    return json.loads(out.strip().splitlines()[-1])


def figures(quick: bool = False, voxel_size: float = 3.0, t1w_voxel_size: float = 1.0,
            parallel: bool = False) -> list[Figure]:
    """Native vs antspyx-default preprocessing of one simulated session.

    ``parallel`` runs the two at the same time: only the CPU-time ratio is then worth
    reading (each process is single-threaded when threads are pinned), but a busy machine
    gives it in half the wall time.
    """
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
        native = _start(_NATIVE, str(bids), str(root / "native"))
        if not parallel:
            native = _result(native)
        baseline = _result(_start(_BASELINE, str(bold), str(t1w),
                                  str(root / "baseline.nii.gz")))
        if parallel:
            native = _result(native)
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
        # CPU seconds: the same ratio, barely moved by other jobs on a shared machine (with
        # threads pinned to one, CPU time is what the wall time would be on an idle one).
        Figure("native preprocessing CPU time / antspyx defaults", native["cpu"]
               / baseline["cpu"], 0.35, "<=",
               f"native {native['cpu']:.0f} s, baseline {baseline['cpu']:.0f} s CPU"),
        Figure("native preprocessing peak memory (GB)", native["peak_kb"] / 1e6, 1.2, "<=",
               "VmHWM of its own process"),
        Figure("native motion r with the truth (lowest axis)", r, 0.99, ">=", ""),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parallel", action="store_true",
                        help="native and baseline at once (read the CPU-time ratio only)")
    args = parser.parse_args()
    print(table(figures(quick=args.quick, parallel=args.parallel)))
