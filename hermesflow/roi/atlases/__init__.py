"""Atlases: a name or a path becomes ROI masks on any image grid.

Named sources are registered in :data:`SOURCES` (one module each, one line here); anything
else given as ``--atlas`` is a path to a custom atlas (:mod:`.custom`).  The default is the
Juelich cytoarchitectonic probabilistic atlas, reduced to the four maps of primary motor
cortex: Brodmann 4a (``mi4a``) and 4p (``mi4p``), left and right (:mod:`.juelich`).
"""

from __future__ import annotations

from collections.abc import Callable

from hermesflow.roi.atlases import custom, juelich
from hermesflow.roi.atlases.base import Atlas, roi_masks
from hermesflow.templates import template_path

# name -> loader of a named atlas source; adding a source is one module and one line here.
SOURCES: dict[str, Callable[[], Atlas]] = {
    "juelich": juelich.load_juelich,
}


def atlas_label(name_or_path: str) -> str:
    """The short name of an atlas, as used in file names (``atlas-<label>``)."""
    if name_or_path.lower() in SOURCES:
        return name_or_path.lower()
    return custom.path_label(name_or_path)


def load_atlas(name_or_path: str) -> Atlas:
    """Return the atlas source called ``name_or_path`` (``"juelich"``) or stored at that path."""
    loader = SOURCES.get(name_or_path.lower())
    return loader() if loader is not None else custom.load_custom(name_or_path)


__all__ = ["SOURCES", "Atlas", "atlas_label", "load_atlas", "roi_masks", "template_path"]
