"""The one place that knows how every output of hermesflow is named (BIDS derivatives).

Session outputs follow BIDS statistical derivatives::

    sub-<s>/ses-<t>/func/sub-<s>_ses-<t>_task-<task>_space-<space>_contrast-move_stat-<stat>_statmap.nii.gz
    sub-<s>/ses-<t>/func/sub-<s>_ses-<t>_task-<task>_space-<space>_atlas-<atlas>_contrast-move_roimeasures.tsv

Group outputs live in ``group/`` with the same entities (task, atlas).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from hermesflow import __version__
from hermesflow.derivatives.writing import write_json

STATS = ("effect", "variance", "t", "z", "psc")
CONFIG_NAME = "hermesflow_config.toml"


@dataclass(frozen=True)
class SessionNames:
    output_dir: Path
    subject: str
    session: str
    task: str
    space: str
    contrast: str = "move"

    @property
    def folder(self) -> Path:
        return self.output_dir / f"sub-{self.subject}" / f"ses-{self.session}" / "func"

    @property
    def prefix(self) -> str:
        return f"sub-{self.subject}_ses-{self.session}_task-{self.task}_space-{self.space}"

    def statmap(self, stat: str) -> Path:
        return self.folder / f"{self.prefix}_contrast-{self.contrast}_stat-{stat}_statmap.nii.gz"

    def report(self, atlas: str) -> Path:
        return self.folder / f"{self.prefix}_atlas-{atlas}_contrast-{self.contrast}_report.html"

    def roi_table(self, atlas: str) -> Path:
        return self.folder / f"{self.prefix}_atlas-{atlas}_contrast-{self.contrast}_roimeasures.tsv"


def roi_table_pattern(task: str, space: str, atlas: str, contrast: str = "move") -> str:
    """Glob pattern (from OUTPUT_DIR) of every session's ROI table."""
    return (f"sub-*/ses-*/func/sub-*_ses-*_task-{task}_space-{space}"
            f"_atlas-{atlas}_contrast-{contrast}_roimeasures.tsv")


def group_file(output_dir: str | Path, task: str, atlas: str, desc: str, ext: str = ".tsv") -> Path:
    return Path(output_dir) / "group" / f"task-{task}_atlas-{atlas}_desc-{desc}{ext}"


def copy_atomic(source: str | Path, target: Path) -> Path:
    """Copy a file into the outputs without ever exposing a partial file."""
    tmp = target.with_name(f".{target.name}.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return target


def write_dataset_description(output_dir: str | Path, upstream: list[dict] | None = None,
                              source_datasets: list[str] | None = None) -> Path:
    """``dataset_description.json`` of the derivatives, with ``GeneratedBy`` provenance.

    ``upstream`` are the ``GeneratedBy`` entries of tools hermesflow ran (fMRIPrep, with its
    container image and digest); they follow hermesflow's own entry.
    """
    generated = {"Name": "hermesflow", "Version": __version__,
                 "CodeURL": "https://github.com/hermesflow/hermesflow"}
    description = {
        "Name": "hermesflow outputs",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated, *(upstream or [])],
    }
    if source_datasets:
        description["SourceDatasets"] = [{"URL": url} for url in source_datasets]
    path = Path(output_dir) / "dataset_description.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous == description:
            return path
    return write_json(path, description)


__all__ = [
    "STATS", "CONFIG_NAME", "SessionNames", "roi_table_pattern", "group_file", "copy_atomic",
    "write_dataset_description",
]
