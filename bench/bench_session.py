"""Per-session speed and memory: GLM and ROI extraction against reading the BOLD run.

Simulates one demo-sized session (4 mm, 120 volumes by default), then in this one process:

* baseline: load the preprocessed BOLD into memory (nibabel, float32), the least any analysis
  of it must do;
* ``fit_session_glm`` (nilearn FirstLevelModel, AR(1), writes all maps);
* ``extract_roi_measures`` (atlas resampling + the five measures);
* the participant level through Nipype for the session's dataset (engine overhead included),

and prints each as a ratio to the baseline (medians over repeats, the three taking turns within
each repeat so that a busy spell of the machine slows them alike), plus peak memory of the GLM
as a multiple of the BOLD array's size, and the GLM's top hotspots (cProfile, file:line).
Machines are shared: read ratios, not seconds.

Figures: GLM + ROI per session / BOLD load (goal <= 1.5); GLM peak memory above imports /
BOLD float32 bytes (goal <= 2.5).

    python bench/bench_session.py [--voxel-size 4] [--repeats 9]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from figures import Figure, table

from hermesflow.cli.scheduler import pinned_threads
from hermesflow.glm.model import fit_session_glm
from hermesflow.preproc.collect import collect_session
from hermesflow.roi.measures import extract_roi_measures
from hermesflow.simulation.trial import simulate_trial

CONFOUNDS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z",
             "framewise_displacement"]


def _median_seconds(*functions, repeats: int) -> list[float]:
    """The median time of each function over ``repeats`` rounds, after one untimed round.

    The functions take turns within each round, so that a machine busy for a while slows the
    baseline and the measured step alike, and the ratio of the medians stays put.
    """
    for function in functions:
        function()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, spent in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


# VmHWM is the peak of this program's own memory; ru_maxrss would carry the parent's peak
# across fork + exec.
_HWM = ("import re\nstatus = open('/proc/self/status').read()\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) / 1024)\n")


def _glm_peak_mb(args: list[str]) -> tuple[float, float]:
    """Peak RSS (MB) of a fresh process fitting one GLM, and of one that only imports."""
    code = (
        "import sys\n"
        "from hermesflow.glm.model import fit_session_glm\n"
        "bold, mask, conf, events, out = sys.argv[1:6]\n"
        f"fit_session_glm(bold, mask, conf, events, 2.0, out, confound_columns={CONFOUNDS!r})\n"
        f"{_HWM}"
    )
    # The same imports as the fitting process (the GLM node now imports the model lazily).
    baseline = "from hermesflow.glm.model import fit_session_glm\n" + _HWM
    run = [sys.executable, "-c"]
    after = float(subprocess.check_output(run + [code, *args], text=True).split()[-1])
    before = float(subprocess.check_output(run + [baseline], text=True).split()[-1])
    return after, before


def hotspots(function, top: int = 3) -> list[str]:
    """The ``top`` functions by own time in one call of ``function``, as file:line."""
    profile = cProfile.Profile()
    profile.runcall(function)
    stats = pstats.Stats(profile).sort_stats("tottime")
    lines = []
    for (path, line, name), (_, _, own, _, _) in list(stats.stats.items()):
        # Built-ins have no file ("~", line 0): their name says what they are.
        where = name if path == "~" else f"{Path(path).name}:{line}({name})"
        lines.append((own, f"{where} {own:.2f} s"))
    return [text for _, text in sorted(lines, reverse=True)[:top]]


def figures(quick: bool = False, voxel_size: float = 4.0, repeats: int | None = None,
            pipeline: bool = True) -> list[Figure]:
    repeats = repeats or (1 if quick else 9)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bids = simulate_trial(root / "bids", participants=1, sessions=(1,), seed=1,
                              voxel_size=voxel_size)
        prep = collect_session(bids / "derivatives" / "fmriprep", "01", "01", t_r=2.0)
        # Start from a quiet disk: the write-back of what ran before (the simulation here,
        # the other benches' gigabytes in `make bench`) would stall the GLM's map writes,
        # not the baseline's reads (1.74 right after bench_participant, 1.47 alone).
        os.sync()
        events = str(bids / "sub-01/ses-01/func/sub-01_ses-01_task-passivewrist_events.tsv")
        bold_img = nib.load(prep.bold)
        n_bytes = np.prod(bold_img.shape) * 4

        maps = {}

        def read_bold():
            nib.load(prep.bold).get_fdata(dtype=np.float32)

        def glm():
            maps.update(fit_session_glm(prep.bold, prep.mask, prep.confounds, events, 2.0,
                                        root / "glm", confound_columns=CONFOUNDS))

        def roi():
            extract_roi_measures(maps, prep.mask, "L", lesion_mask=prep.lesion_mask)

        # With one BLAS / OpenMP thread, as the scheduler runs a session's GLM node (its
        # n_procs): unpinned, each matrix product waited for a second thread that a busy
        # machine's other core served late (GLM / load 1.4 or 1.7 from run to run).
        with pinned_threads(1):
            load, glm_time, roi_time = _median_seconds(read_bold, glm, roi, repeats=repeats)
            glm_hot = hotspots(glm)
        peak_mb, import_mb = _glm_peak_mb([prep.bold, prep.mask, prep.confounds, events,
                                           str(root / "glm_mem")])
        pipeline_s = None
        if pipeline:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "hermesflow.cli.run", str(bids),
                            str(root / "out"), "participant", "-w", str(root / "work"),
                            "--nprocs", "1", "--skip-bids-validation"], check=True,
                           capture_output=True)
            pipeline_s = time.perf_counter() - start

    shape = "x".join(str(n) for n in bold_img.shape)
    print(f"BOLD {shape} ({n_bytes / 2**20:.0f} MB as float32); load (baseline) {load:.3f} s")
    print(f"GLM / load                     {glm_time / load:8.1f}   ({glm_time:.2f} s)")
    print(f"ROI extraction / load          {roi_time / load:8.1f}   ({roi_time:.2f} s)")
    if pipeline_s is not None:
        print(f"participant level (1 session, Nipype, process start) / load "
              f"{pipeline_s / load:8.1f}   ({pipeline_s:.1f} s)")
    extra = (peak_mb - import_mb) * 2**20 / n_bytes
    print(f"GLM peak RSS {peak_mb:.0f} MB, of which imports {import_mb:.0f} MB; "
          f"(peak - imports) / BOLD size {extra:.1f}")
    print("GLM hotspots (own time, one fit):\n  " + "\n  ".join(glm_hot))
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process peaked at {usage:.0f} MB)")
    note = f"{shape}, {voxel_size:g} mm"
    return [
        Figure("GLM + ROI per session / BOLD load", (glm_time + roi_time) / load, 1.5, "<=",
               f"{note}; top: {glm_hot[0].rsplit(' ', 2)[0] if glm_hot else '-'}"),
        Figure("GLM peak memory / BOLD float32 bytes", extra, 2.5, "<=", note),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxel-size", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(table(figures(voxel_size=args.voxel_size, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
