"""The raw files hermesflow's own preprocessing needs: T1w, lesion mask and BOLD run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hermesflow.errors import InputError


@dataclass(frozen=True)
class NativeInputs:
    """The raw files of one session."""

    t1w: Path
    lesion: Path
    bold: Path


def find_inputs(bids_dir: str | Path, subject: str, session: str, task: str) -> NativeInputs:
    """The session's T1w, lesion mask and BOLD run, or an :class:`InputError` naming the file.

    Raises
    ------
    InputError
        When a file is missing or the BOLD run is ambiguous.
    """
    subject, session = subject.removeprefix("sub-"), session.removeprefix("ses-")
    folder = Path(bids_dir) / f"sub-{subject}" / f"ses-{session}"
    prefix = f"sub-{subject}_ses-{session}"
    t1w = folder / "anat" / f"{prefix}_T1w.nii.gz"
    lesion = folder / "anat" / f"{prefix}_T1w_label-lesion_roi.nii.gz"
    if not t1w.exists():
        raise InputError(t1w, "T1w image missing (native preprocessing registers through it)",
                         "add the session's T1w to the BIDS dataset or use --preproc fmriprep")
    if not lesion.exists():
        raise InputError(lesion, "lesion mask missing (it is masked out of the registration)",
                         "draw the lesion on the T1w and save it under this name (1 = lesion)")
    bolds = sorted((folder / "func").glob(f"{prefix}_task-{task}*_bold.nii*"))
    if len(bolds) != 1:
        found = ", ".join(p.name for p in bolds) or "none"
        raise InputError(folder / "func", f"expected one BOLD run of task {task}, found {found}",
                         "keep one run per session or check --task")
    return NativeInputs(t1w=t1w, lesion=lesion, bold=bolds[0])


def find_raw_lesion(bids_dir: str | Path, subject: str, session: str) -> Path | None:
    """The raw lesion mask of a session (``ses-Y/anat``), else of the subject (``sub-X/anat``).

    Named as fMRIPrep reads lesion masks (``..._label-lesion_roi.nii.gz``, in the T1w's space,
    so without a ``space-`` entity); several candidates at one level are an error.
    """
    subject, session = subject.removeprefix("sub-"), session.removeprefix("ses-")
    root = Path(bids_dir) / f"sub-{subject}"
    for folder, prefix in ((root / f"ses-{session}" / "anat", f"sub-{subject}_ses-{session}_"),
                           (root / "anat", f"sub-{subject}_")):
        found = sorted(p for p in folder.glob(f"{prefix}*label-lesion_roi.nii*")
                       if "_space-" not in p.name and not p.name.startswith("."))
        if len(found) > 1:
            raise InputError(folder, "several lesion masks: " + ", ".join(p.name for p in found),
                             "keep one lesion mask per session (or one for the subject)")
        if found:
            return found[0]
    return None
