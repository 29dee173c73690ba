"""The one place that knows how every output of hermesflow is named (BIDS derivatives).

Session outputs follow BIDS statistical derivatives::

    sub-<s>/ses-<t>/func/sub-<s>_ses-<t>_task-<task>_space-<space>_contrast-move_stat-<stat>_statmap.nii.gz
    sub-<s>/ses-<t>/func/sub-<s>_ses-<t>_task-<task>_space-<space>_atlas-<atlas>_contrast-move_roimeasures.tsv

Group outputs live in ``group/`` with the same entities (task, atlas).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


__all__ = ["CONFIG_NAME", "SessionNames", "roi_table_pattern", "group_file"]
