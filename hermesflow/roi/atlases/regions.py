"""Region names: hermesflow's short names, hemispheres written in names, and ``--rois``.

Atlases write hemispheres in many ways (``BA4a_L``, ``Left-Hippocampus``, ``ctx-lh-precentral``,
``7Networks_RH_Vis_1``); :func:`parse_name` finds one whole-word side token and takes it out,
the rest (lower case, words joined by ``_``) is the region's name in hermesflow's outcomes.
"""

from __future__ import annotations

import re

from hermesflow.errors import InputError
from hermesflow.roi.atlases.base import Region

_SIDE_WORDS = {"l": "L", "left": "L", "lh": "L", "r": "R", "right": "R", "rh": "R"}
_WORD = re.compile(r"[A-Za-z0-9]+")
# Errors list the atlas's regions; a large atlas is cut here.
_LISTED = 40


def roi_name(text: str) -> str:
    """``"Primary motor cortex BA4a"`` -> ``"primary_motor_cortex_ba4a"``; a valid outcome name."""
    name = "_".join(word.lower() for word in _WORD.findall(text)) or "region"
    return name if name[0].isalpha() else f"roi_{name}"


def parse_name(name: str) -> tuple[str, str | None]:
    """The short name and the hemisphere (``L``/``R``, or None) written in a region's name.

    A side is read only when exactly one whole word says it (``L``, ``left``, ``lh``, ...).
    """
    words = _WORD.findall(name)
    sides = [i for i, word in enumerate(words) if word.lower() in _SIDE_WORDS]
    found = {_SIDE_WORDS[words[i].lower()] for i in sides}
    if len(found) != 1:
        return roi_name(name), None
    rest = [word for i, word in enumerate(words) if i not in sides]
    return roi_name(" ".join(rest)), found.pop()


def side_word(value: object) -> str | None:
    """A hemisphere column's value (``L``, ``left``, ``rh`` ...) as ``L``/``R``; else None."""
    return _SIDE_WORDS.get(str(value).strip().lower())


def listing(regions: tuple[Region, ...] | list[Region]) -> str:
    """The regions' names for an error message (cut after a few dozen)."""
    names = list(dict.fromkeys(region.name for region in regions))
    shown = ", ".join(names[:_LISTED])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _LISTED else "")


def _matches(pattern: str, region: Region) -> bool:
    if pattern.lower() in (region.name.lower(), region.roi.lower()):
        return True
    try:
        found = re.compile(pattern, re.IGNORECASE)
    except re.error as err:
        raise InputError(None, f"--rois {pattern!r} is neither a region name nor a regular "
                         f"expression ({err})", "give a region name or a valid pattern") from None
    return bool(found.search(region.name) or found.search(region.roi))


def select_regions(regions: tuple[Region, ...], patterns: list[str] | tuple[str, ...],
                   source: str) -> tuple[Region, ...]:
    """The regions matching any of ``patterns`` (every region if there are none).

    A pattern equal to a region's name (or short name), ignoring case, picks it; otherwise it
    is a regular expression searched in both names.  A pattern that picks nothing is an error
    that lists what the atlas has.
    """
    if not patterns:
        return tuple(regions)
    chosen: dict[int, Region] = {}
    for pattern in patterns:
        exact = [r for r in regions if pattern.lower() in (r.name.lower(), r.roi.lower())]
        found = exact or [r for r in regions if _matches(pattern, r)]
        if not found:
            raise InputError(source, f"no region matches --rois {pattern!r}; the atlas has: "
                             f"{listing(regions)}", "choose --rois among these names (or a "
                             "regular expression matching them)")
        chosen.update((id(r), r) for r in found)
    return tuple(r for r in regions if id(r) in chosen)
