"""The simulator against its old path: the same trial, new code / old code (goal <= 0.25).

The old path is rebuilt here by swapping the old pieces back in: per-volume resampling of a
C-order series (strided volume copies), C-order images, zlib's gzip at level 4 (the
writer now uses ISA-L, :func:`hermesflow.derivatives.writing.gzip_compress`) and one
process (the demo now simulates two participants at a time, ``--nprocs 2``).  Both write the same
spec and seed; the two runs alternate so a shared machine slows both alike.  Also checks that
they give the same data (BOLD within float32 rounding, within one int16 unit for the raw).

    python bench/bench_simulate.py [--participants 12] [--repeats 1]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from figures import Figure

from hermesflow.derivatives import writing
from hermesflow.simulation import images as simimage
from hermesflow.simulation import trial
from hermesflow.simulation.trial import SimulationSpec, simulate_trial

GOAL = 0.25
# As `make demo` runs it (NPROCS=2); the old simulator had one process.
NPROCS = 2


def _old_native_bold(series, affine, head, motion):
    native = np.empty_like(series)
    for t in range(series.shape[-1]):
        native[..., t] = simimage.to_native(series[..., t], affine,
                                            head @ simimage.rigid_matrix(motion[t]))
    return native


def _old_image(self, data, dtype=None):
    data = np.asarray(data if dtype is None else data.astype(dtype))
    img = nib.Nifti1Image(data, self.affine)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _old_write_nifti(path, img):
    """The writer before issue 14: the same header handling, zlib's gzip at level 4."""
    img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)
    if img.header.get_xyzt_units()[0] == "unknown":
        img.header.set_xyzt_units("mm", "sec" if img.ndim == 4 else None)
    return writing.write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=4, mtime=0))


@contextlib.contextmanager
def old_path():
    """The simulator as it was before issue 14 (same data, slower)."""
    saved = (simimage.native_bold, simimage.simulate_bold, simimage.TemplateGrid.image,
             trial.write_nifti)
    new_simulate_bold = simimage.simulate_bold
    simimage.native_bold = _old_native_bold
    simimage.simulate_bold = lambda *a, **k: np.ascontiguousarray(new_simulate_bold(*a, **k))
    simimage.TemplateGrid.image = _old_image
    trial.write_nifti = _old_write_nifti
    try:
        yield
    finally:
        (simimage.native_bold, simimage.simulate_bold, simimage.TemplateGrid.image,
         trial.write_nifti) = saved


def _cpu_seconds() -> float:
    """CPU of this process and of its finished children (the forked simulator workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _simulate(out: Path, participants: int, n_procs: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu_seconds()
    simulate_trial(out, SimulationSpec(participants=participants, seed=1), n_procs=n_procs)
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def _same_data(old: Path, new: Path) -> float:
    """Largest difference over the BOLD files, in units of the stored int16."""
    worst = 0.0
    for path in sorted(old.rglob("*_bold.nii.gz")):
        a = np.asanyarray(nib.load(path).dataobj, np.float64)
        b = np.asanyarray(nib.load(new / path.relative_to(old)).dataobj, np.float64)
        scale = float(nib.load(path).dataobj.slope or 1.0)
        worst = max(worst, float(np.abs(a - b).max()) / scale)
    return worst


def figures(quick: bool = False, participants: int | None = None,
            repeats: int = 1) -> list[Figure]:
    participants = participants or (3 if quick else 12)
    times = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for name in ("old", "new"):
                out = Path(tmp) / f"{name}{repeat}"
                with old_path() if name == "old" else contextlib.nullcontext():
                    times[name].append(_simulate(out, participants,
                                                 1 if name == "old" else NPROCS))
        worst = _same_data(Path(tmp) / "old0", Path(tmp) / "new0")
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    print(f"simulate {participants} participants x 3 sessions: old {wall['old']:.1f} s "
          f"(CPU {cpu['old']:.1f} s), new {wall['new']:.1f} s (CPU {cpu['new']:.1f} s); "
          f"largest BOLD difference {worst:.3g} stored units")
    note = f"{participants} participants; CPU ratio {cpu['new'] / cpu['old']:.2f}"
    return [Figure("simulator new / old (wall)", wall["new"] / wall["old"], GOAL, "<=", note)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from figures import table

    print(table(figures(participants=args.participants, repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
