"""Atlas files: the label table (TSV) and JSON sidecar next to an image, and what they say.

Label tables come in two forms:

* BIDS-Atlas / TemplateFlow: ``index`` and ``name`` columns (others, such as ``color`` or
  ``abbreviation``, are ignored; a ``hemisphere`` column, if any, gives the side);
* hermesflow's own: ``index``, ``roi`` and ``hemi`` (``L``/``R``).

For a label image ``index`` is the label value; for a probabilistic image it is the volume,
0-based, or 1-based when the indices run from 1 to the number of volumes (as label-style
tables do).  The side of a region comes from the table, else from its name
(:func:`~.regions.parse_name`), else later from its centroid.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import pandas as pd

from hermesflow.errors import InputError
from hermesflow.roi.atlases.base import Atlas, Region
from hermesflow.roi.atlases.regions import parse_name, roi_name, side_word

_ENTITY = re.compile(r"(?:^|_)([a-zA-Z0-9]+)-([a-zA-Z0-9.+]+)(?=_|$)")
_SIDE_COLUMNS = ("hemisphere", "hemi", "side")


def stem(path: str | Path) -> str:
    """The file name without ``.nii``/``.nii.gz``."""
    return Path(path).name.removesuffix(".gz").removesuffix(".nii")


def entities(path: str | Path) -> dict[str, str]:
    """BIDS entities of a file name: ``tpl-X_atlas-Y_res-2_dseg`` -> ``{tpl: X, atlas: Y, res: 2}``."""
    return {key: value for key, value in _ENTITY.findall(stem(path))}


def _siblings(image: Path, ext: str) -> list[Path]:
    """Files that may describe ``image``: same name, ``dseg`` for ``probseg``, without ``res-``.

    TemplateFlow writes one table for every resolution (``tpl-X_atlas-Y_dseg.tsv`` beside
    ``tpl-X_res-01_atlas-Y_dseg.nii.gz``).
    """
    name = stem(image)
    names = [name, name.replace("_probseg", "_dseg")]
    names += [re.sub(r"_res-[a-zA-Z0-9]+", "", n) for n in names]
    return [image.with_name(n + ext) for n in dict.fromkeys(names)]


def find_table(image: Path) -> Path:
    """The TSV that names the regions of ``image``."""
    for candidate in _siblings(image, ".tsv"):
        if candidate.exists():
            return candidate
    raise InputError(image, "atlas has no label table",
                     f"write {stem(image)}.tsv next to it with columns index, name")


def find_sidecar(image: Path) -> Path | None:
    """The atlas's JSON sidecar, if it has one."""
    return next((c for c in _siblings(image, ".json") if c.exists()), None)


def template_of(image: Path, sidecar: Path | None) -> str | None:
    """The template the atlas is in: ``tpl-``/``space-`` of its name, else its sidecar's."""
    found = entities(image)
    if "tpl" in found or "space" in found:
        return found.get("tpl") or found["space"]
    if sidecar is not None:
        try:
            meta = json.loads(sidecar.read_text())
        except ValueError as err:
            raise InputError(sidecar, f"not valid JSON ({err})", "fix the sidecar") from None
        for key in ("Template", "Space", "SpatialReference"):
            if isinstance(meta.get(key), str):
                return meta[key].removeprefix("tpl-")
    return None


def read_regions(table_path: Path) -> tuple[Region, ...]:
    """The regions a label table names (sides from a column or the names, else None)."""
    try:
        table = pd.read_csv(table_path, sep="\t", dtype={"name": str, "roi": str})
    except (OSError, ValueError) as err:
        raise InputError(table_path, f"cannot be read as a TSV ({err})",
                         "write a tab-separated table with columns index, name") from None
    columns = set(table.columns)
    if "index" not in columns or not ({"name"} <= columns or {"roi", "hemi"} <= columns):
        raise InputError(table_path, f"label table has columns {', '.join(table.columns)}",
                         "give columns index and name (BIDS-Atlas, TemplateFlow) or index, roi "
                         "and hemi")
    if not pd.api.types.is_integer_dtype(table["index"]):
        raise InputError(table_path, "the index column holds non-integers",
                         "write each region's label value (or volume) as an integer")
    regions = []
    side_column = next((c for c in _SIDE_COLUMNS if c in columns), None)
    for row in table.to_dict("records"):
        if "roi" in row and "hemi" in columns and pd.notna(row.get("roi")):
            name = f"{row['roi']}_{row['hemi']}"
            roi, side, side_from = roi_name(str(row["roi"])), side_word(row["hemi"]), "table"
        else:
            name = str(row["name"])
            roi, side = parse_name(name)
            side_from = "name"
            if side is None and side_column and side_word(row[side_column]):
                side, side_from = side_word(row[side_column]), "table"
        if name.lower() in ("background", "unknown", "0") and int(row["index"]) == 0:
            continue  # label 0 is the background of label images
        regions.append(Region(name, roi, side, int(row["index"]),
                              side_from if side else "centroid"))
    return tuple(regions)


def open_file_atlas(path: str | Path, label: str, *, template: str | None) -> Atlas:
    """An atlas file with its table (and sidecar): the header is read, not the data."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "atlas file not found", "check the --atlas path")
    table = find_table(path)
    sidecar = find_sidecar(path)
    try:
        image = nib.load(path)
    except Exception as err:  # noqa: BLE001 - nibabel raises several kinds for unreadable files
        raise InputError(path, f"cannot be read as a NIfTI image ({err})",
                         "give a .nii or .nii.gz atlas") from None
    squeezed = image.ndim == 4 and image.shape[3] == 1 and stem(path).endswith("_dseg")
    kind = "probabilistic" if (image.ndim == 4 and not squeezed) or stem(path).endswith(
        "_probseg") else "dseg"
    files = tuple(str(p) for p in (path, table, sidecar) if p is not None)
    return Atlas(label, image, read_regions(table), kind, str(path),
                 templates=(template,) if template else (), files=files, table=str(table))
