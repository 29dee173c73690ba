"""Atlas re-run against the first run: how much of the participant level a new atlas costs.

Simulates the demo trial (``make demo``: 12 participants, seed 1), runs its participant level
as ``make demo`` does (BIDS validation included), then again on the same work dir with a new
custom atlas (a label image holding Juelich's MI-4a/4p on the GLM grid under other names).
The re-run is made three times (its nodes, outputs and record removed in between) and its median
taken: a second-long run is noisier than the first.
The GLMs come from Nipype's cache and the validator's report from its record (the dataset is
unchanged); only the ROI nodes (measures and the atlas's report page: one node per session and
atlas) and the sinks run.  Both runs are made in this one process, as a user's second command
would not be: the re-run pays no import in the main process.  Prints both times, their ratio
(goal: <= 0.10) and the ROI nodes' own times (the first in each worker process also imports
what the page needs).  Machines are shared: read the ratio, not the seconds.

    python bench/bench_atlas.py [--participants 12] [--voxel-size 4] [--nprocs 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from hermesflow.cli.rerun import RECORD_NAME
from hermesflow.cli.run import main as hermesflow
from hermesflow.cli.selection import ATLAS_RECORD
from hermesflow.roi.atlases import load_atlas, roi_masks
from hermesflow.simulation.trial import SimulationSpec, simulate_trial

GOAL = 0.10
RERUNS = 3


def _new_atlas(out: Path, folder: Path) -> Path:
    grid = nib.load(next(out.rglob("*_stat-z_statmap.nii.gz")))
    masks = roi_masks(load_atlas("juelich"), grid)
    labels = np.zeros(grid.shape, np.int16)
    names = []
    for value, (roi, side) in enumerate(sorted(masks), 1):
        labels[masks[(roi, side)]] = value
        names.append(f"bench_{roi}_{side}")
    path = folder / "bench.nii.gz"
    nib.save(nib.Nifti1Image(labels, grid.affine), path)
    pd.DataFrame({"index": range(1, len(names) + 1), "name": names}).to_csv(
        folder / "bench.tsv", sep="\t", index=False)
    return path


def _roi_node_seconds(work: Path, label: str) -> list[float]:
    """Each ROI node's own run time (Nipype's result files) for the atlas ``label``."""
    from nipype.utils.filemanip import loadpkl

    return [float(loadpkl(path).runtime.duration)
            for path in work.rglob(f"*_label_{label}/roi/result_roi.pklz")]


def _forget(root: Path, label: str, checks: bytes) -> None:
    """Undo an atlas re-run: its nodes, its outputs, the run's record, and the atlas checks
    remembered since (the next re-run does all of it again)."""
    for folder in list((root / "work").rglob(f"*_label_{label}")):
        shutil.rmtree(folder)
    for output in (root / "out").rglob(f"*_atlas-{label}_*"):
        output.unlink()
    (root / "work" / RECORD_NAME).unlink(missing_ok=True)
    (root / "work" / ATLAS_RECORD).write_bytes(checks)


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    status = hermesflow(argv)
    if status != 0:
        raise SystemExit(f"hermesflow {' '.join(argv)} exited {status}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=12)
    parser.add_argument("--voxel-size", type=float, default=4.0)
    parser.add_argument("--nprocs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bids = simulate_trial(root / "bids", SimulationSpec(
            participants=args.participants, voxel_size=args.voxel_size, seed=1))
        common = ["-w", str(root / "work"), "--nprocs", str(args.nprocs), "-q"]
        first = _timed([str(bids), str(root / "out"), "participant", *common])
        atlas = _new_atlas(root / "out", root)
        checks = (root / "work" / ATLAS_RECORD).read_bytes()
        reruns = []
        for repeat in range(RERUNS):
            if repeat:
                _forget(root, "bench", checks)
            reruns.append(_timed([str(bids), str(root / "out"), "participant", *common,
                                  "--atlas", str(atlas)]))
        rerun = statistics.median(reruns)
        nodes = _roi_node_seconds(root / "work", "bench")
    ratio = rerun / first
    print(f"participant level, {args.participants} participants, {args.voxel_size:g} mm: "
          f"first run {first:.1f} s, atlas re-run {rerun:.2f} s (median of "
          f"{', '.join(f'{t:.2f}' for t in reruns)})")
    if nodes:
        print(f"ROI nodes of the re-run ({len(nodes)}): median {np.median(nodes):.2f} s, "
              f"slowest {max(nodes):.2f} s")
    print(f"atlas re-run / first run = {ratio:.3f} (goal <= {GOAL:.2f}: "
          f"{'met' if ratio <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
