"""An atlas of the user's: a path to a 3D label image (dseg) or a 4D probabilistic image.

Its label table is the TSV next to it (BIDS-Atlas style ``*_dseg.tsv`` or ``<image>.tsv``) with
columns ``index``, ``roi`` and ``hemi`` (``L``/``R``); for a probabilistic atlas ``index`` is
the 0-based volume.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pandas as pd

from hermesflow.errors import InputError
from hermesflow.roi.atlases.base import Atlas


def path_label(path: str | Path) -> str:
    """The short name of an atlas file, for ``atlas-<label>``: its stem, letters and digits."""
    stem = Path(path).name.split(".")[0]
    return "".join(ch for ch in stem if ch.isalnum()) or "custom"


def label_table(image_path: Path) -> Path:
    """The TSV that names the regions of ``image_path``."""
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


def load_custom(path: str | Path) -> Atlas:
    """The atlas stored at ``path`` with its label table."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "atlas file not found", "check the --atlas path")
    table_path = label_table(path)
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
    return Atlas(path_label(path), img, regions, kind, str(path))
