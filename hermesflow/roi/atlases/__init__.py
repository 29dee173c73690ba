"""Atlases: a name or a path (``--atlas``) becomes regions, and ROI masks on any grid.

Each source is one module of this package with a ``SOURCE`` (:class:`~.base.AtlasSource`),
found here when the package is imported: adding a source is adding its module.  The sources
are asked in priority order whether they read an ``--atlas`` value:

* :mod:`.juelich` -- ``juelich``, the default: the Juelich probabilistic atlas, BA4a and BA4p
  (``mi4a``, ``mi4p``) unless ``--rois`` chooses others;
* :mod:`.templateflow` -- files named as TemplateFlow / BIDS-Atlas name them
  (``tpl-<T>_atlas-<A>_dseg.nii.gz`` / ``_probseg.nii.gz`` with their ``_dseg.tsv``);
* :mod:`.custom` -- any other label image or 4D probabilistic image with a TSV.

:func:`load_atlas` opens the atlas and prepares it (:func:`~.loading.prepare`: template
check, regions chosen, hemispheres, probabilities in percent); :func:`roi_masks` puts it on a
grid.  :func:`atlas_digest` hashes the atlas's files: the ROI nodes key their cache on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import pkgutil
from functools import lru_cache
from pathlib import Path

from hermesflow.errors import RegistryError
from hermesflow.roi.atlases.base import (
    Atlas,
    AtlasSource,
    Region,
    RoiMap,
    file_stamp,
    roi_maps,
    roi_masks,
)
from hermesflow.roi.atlases.loading import check_space, prepare, template_name
from hermesflow.templates import template_path


def _discover() -> dict[str, AtlasSource]:
    sources: dict[str, AtlasSource] = {}
    for module in pkgutil.iter_modules(__path__):
        source = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SOURCE", None)
        if isinstance(source, AtlasSource):
            if source.name in sources:
                raise RegistryError(f"atlas source {source.name!r} is defined twice")
            sources[source.name] = source
    return dict(sorted(sources.items(), key=lambda item: item[1].priority))


# name -> source, in the order they are asked.
SOURCES: dict[str, AtlasSource] = _discover()


def source_of(spec: str) -> AtlasSource:
    """The source that reads ``--atlas spec``."""
    return next(source for source in SOURCES.values() if source.claims(spec))


def is_named(spec: str) -> bool:
    """Whether ``spec`` names a source (``juelich``) rather than a file."""
    source = source_of(spec)
    return source.by_name and source.name == spec.lower()


def atlas_label(spec: str) -> str:
    """The short name of an atlas, as used in file names (``atlas-<label>``)."""
    return source_of(spec).label(spec)


# File atlases opened in this process, by path: (stamp of their files, atlas).
_OPENED: dict[str, tuple[tuple, Atlas]] = {}


def _open_stamped(spec: str) -> tuple[Atlas, tuple | None]:
    """The opened atlas and the stamp of its files (None if a file cannot be stat'ed).

    An atlas given by path is kept per process while its files are unchanged: each ROI node
    opens its atlas, and reading a label table cost more than the measures of an ROI (3.5 of
    a node's 35 ms in an atlas re-run at 4 mm).  A named source finds its files each time
    (``$FSLDIR`` may point elsewhere) and keeps its own cache of what it parsed.
    """
    known = None if is_named(spec) else _OPENED.get(spec)
    with contextlib.suppress(OSError):
        if known is not None and file_stamp(known[1].files) == known[0]:
            return known[1], known[0]
    atlas = source_of(spec).open(spec)
    try:
        stamp = file_stamp(atlas.files)
    except OSError:
        return atlas, None
    if not is_named(spec):
        _OPENED[spec] = (stamp, atlas)
    return atlas, stamp


def open_atlas(spec: str) -> Atlas:
    """The atlas ``spec`` as its source opens it: every region, data not read."""
    return _open_stamped(spec)[0]


@lru_cache(maxsize=8)
def _prepared(spec: str, rois: tuple[str, ...], space: str | None, stamp: tuple) -> Atlas:
    # ``stamp`` (size, mtime of each file) is part of the key: an atlas edited in place is
    # read again, also in worker processes forked from a parent that had it cached.
    return prepare(open_atlas(spec), rois, space)


def load_atlas(spec: str, rois: list[str] | tuple[str, ...] | None = None,
               space: str | None = None) -> Atlas:
    """The atlas ``spec`` (a source's name or a path), prepared for :func:`roi_masks`.

    Parameters
    ----------
    rois
        Region names or regular expressions; None: the source's default regions.
    space
        The maps' space (``NAME`` or ``NAME:res-N``); an atlas in another template is refused.
    """
    opened, stamp = _open_stamped(spec)
    if stamp is None:
        stamp = file_stamp(opened.files)  # raises: a file of the atlas is gone
    return _prepared(spec, tuple(rois or ()), space, stamp)


def atlas_digest(spec: str) -> str:
    """SHA-256 of the atlas's files (image, table, sidecar): what the ROI nodes' cache keys on."""
    digest = hashlib.sha256()
    for file in open_atlas(spec).files:
        digest.update(Path(file).name.encode())
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def atlas_provenance(atlas: Atlas, threshold: float) -> dict:
    """What an ROI table's sidecar says of its atlas: files, kind, values, regions and sides."""
    regions: dict[str, dict] = {}
    for region in atlas.regions:
        regions.setdefault(region.roi, {})[region.side] = {
            "Name": region.name, "Hemisphere": region.side_from}
    provenance = {"Name": atlas.name, "Source": atlas.source, "Table": atlas.table,
                  "Kind": atlas.kind, "Template": list(atlas.templates) or "not declared",
                  "Regions": regions}
    if atlas.kind == "probabilistic":
        provenance.update(Values=atlas.values, ThresholdPercent=threshold)
    return provenance


__all__ = ["SOURCES", "Atlas", "AtlasSource", "Region", "RoiMap", "atlas_digest", "atlas_label",
           "atlas_provenance", "check_space", "is_named", "load_atlas", "open_atlas", "roi_maps",
           "roi_masks", "source_of", "template_name", "template_path"]
