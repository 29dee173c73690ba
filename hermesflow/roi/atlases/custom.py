"""An atlas of the user's: a 3D label image or a 4D probabilistic image, with a TSV.

The TSV is ``<image>.tsv`` beside the image (or the ``_dseg.tsv`` of a ``_probseg`` image),
with columns ``index`` and ``name`` (BIDS-Atlas style) or ``index``, ``roi`` and ``hemi``;
for a probabilistic atlas ``index`` is the volume (0-based, or 1 to N).  Probabilities may be
in 0-1 or in percent (detected).  A JSON sidecar beside it may name the template
(``"Template"``); without one the atlas is taken to be in the maps' space.
"""

from __future__ import annotations

from pathlib import Path

from hermesflow.roi.atlases.base import Atlas, AtlasSource
from hermesflow.roi.atlases.tables import find_sidecar, open_file_atlas, template_of


def path_label(path: str | Path) -> str:
    """The short name of an atlas file, for ``atlas-<label>``: its stem, letters and digits."""
    stem = Path(path).name.split(".")[0]
    return "".join(ch for ch in stem if ch.isalnum()) or "custom"


def load_custom(path: str | Path) -> Atlas:
    """The atlas stored at ``path`` with its label table (opened: header and table only)."""
    path = Path(path)
    sidecar = find_sidecar(path) if path.exists() else None
    template = template_of(path, sidecar) if path.exists() else None
    return open_file_atlas(path, path_label(path), template=template)


# Any path no other source claims.
SOURCE = AtlasSource("custom", claims=lambda spec: True, open=load_custom, label=path_label,
                     priority=100)
