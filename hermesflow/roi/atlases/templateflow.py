"""An atlas named as TemplateFlow and BIDS-Atlas name them: ``tpl-<T>_atlas-<A>_..._dseg.nii.gz``.

``tpl-`` (TemplateFlow) or ``space-`` (BIDS derivatives) names the template, which must be the
maps' space; ``_dseg`` is a label image, ``_probseg`` probabilistic maps (4D, one volume per
region, values in 0-1 or percent).  The regions are named by the ``_dseg.tsv`` beside it
(``index``, ``name``; TemplateFlow writes one table for all resolutions, without ``res-``)
and the JSON sidecar may say more.  Output files are labelled ``atlas-<A><desc>``.
"""

from __future__ import annotations

import re
from pathlib import Path

from hermesflow.roi.atlases.base import Atlas, AtlasSource
from hermesflow.roi.atlases.tables import entities, open_file_atlas, stem

_SUFFIX = re.compile(r"_(dseg|probseg)$")


def claims(spec: str) -> bool:
    """A file whose name carries a template (``tpl-``/``space-``) and the dseg/probseg suffix."""
    found = entities(spec)
    return ("tpl" in found or "space" in found) and bool(_SUFFIX.search(stem(spec)))


def label(spec: str) -> str:
    """``tpl-X_atlas-Schaefer2018_desc-100Parcels_dseg`` -> ``Schaefer2018100Parcels``."""
    found = entities(spec)
    text = found.get("atlas", "") + found.get("desc", "")
    return "".join(ch for ch in text if ch.isalnum()) or "atlas"


def open_templateflow(spec: str) -> Atlas:
    """The atlas file with its table; its template is the one its name says."""
    found = entities(spec)
    return open_file_atlas(Path(spec), label(spec),
                           template=found.get("tpl") or found.get("space"))


SOURCE = AtlasSource("templateflow", claims=claims, open=open_templateflow, label=label,
                     priority=10)
