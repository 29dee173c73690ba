"""The one builder of ``dataset_description.json``, for every dataset hermesflow writes.

hermesflow's outputs, its native preprocessing (an fMRIPrep-layout derivatives folder) and the
simulator's raw dataset, derivatives and ground truth all describe themselves here, so the
BIDS version, the ``GeneratedBy`` provenance and the licence are set in one place.
"""

from __future__ import annotations

import json
from pathlib import Path

from hermesflow import __version__
from hermesflow.derivatives.writing import write_json

BIDS_VERSION = "1.10.0"
CODE_URL = "https://github.com/hermesflow/hermesflow"


def hermesflow_generated_by(name: str = "hermesflow", description: str | None = None) -> dict:
    """A ``GeneratedBy`` entry for hermesflow (or one of its parts, e.g. the native source)."""
    entry = {"Name": name, "Version": __version__, "CodeURL": CODE_URL}
    if description:
        entry["Description"] = description
    return entry


def dataset_description(name: str, *, generated_by: list[dict] | None = None,
                        source_datasets: list[str] | None = None,
                        raw: bool = False, **extra) -> dict:
    """The content of a ``dataset_description.json``.

    Parameters
    ----------
    name : str
        The dataset's ``Name``.
    generated_by : list of dict
        ``GeneratedBy`` entries (derivatives only); default: hermesflow itself.
    source_datasets : list of str
        URLs of the datasets this one was computed from.
    raw : bool
        A raw dataset (``DatasetType: raw``, no ``GeneratedBy``).
    extra
        Further top-level fields (``License``, ``Authors``, ...).
    """
    description = {"Name": name, "BIDSVersion": BIDS_VERSION,
                   "DatasetType": "raw" if raw else "derivative"}
    if not raw:
        description["GeneratedBy"] = generated_by or [hermesflow_generated_by()]
    if source_datasets:
        description["SourceDatasets"] = [{"URL": url} for url in source_datasets]
    description.update(extra)
    return description


def write_dataset_description(folder: str | Path, description: dict) -> Path:
    """Write ``folder/dataset_description.json`` unless the same content is already there."""
    path = Path(folder) / "dataset_description.json"
    if path.exists():
        try:
            if json.loads(path.read_text()) == description:
                return path
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # a damaged description is rewritten
    return write_json(path, description)
