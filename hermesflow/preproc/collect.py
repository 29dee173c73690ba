"""The preprocessed-data contract: find one session's fMRIPrep outputs, whoever made them.

Whatever the source (fMRIPrep in a container, the native antspyx path, or a folder the user
already has), the GLM reads a :class:`PreprocessedSession`: BOLD in ``space``, its brain mask,
the confounds table with fMRIPrep's column names, and the lesion mask in the same space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from hermesflow.errors import InputError


@dataclass(frozen=True)
class PreprocessedSession:
    subject: str
    session: str
    bold: str
    mask: str
    confounds: str
    lesion_mask: str | None
    t_r: float

    def to_dict(self) -> dict:
        return asdict(self)


def _patterns(subject: str, session: str, task: str, space: str) -> dict[str, tuple[str, str]]:
    """Glob patterns (relative to the session folder) of each file, with fMRIPrep's names."""
    prefix = f"sub-{subject}_ses-{session}"
    func = f"{prefix}_task-{task}*"
    return {
        "bold": ("func", f"{func}_space-{space}*_desc-preproc_bold.nii*"),
        "mask": ("func", f"{func}_space-{space}*_desc-brain_mask.nii*"),
        "confounds": ("func", f"{func}_desc-confounds_timeseries.tsv"),
        "lesion_mask": ("anat", f"{prefix}*_space-{space}*_label-lesion_roi.nii*"),
    }


def _find(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))


def expected_files(fmriprep_dir: str | Path, subject: str, session: str, task: str,
                   space: str) -> dict[str, list[Path]]:
    """What exists of each expected file (empty list: not produced)."""
    base = Path(fmriprep_dir) / f"sub-{subject}" / f"ses-{session}"
    return {key: _find(base / sub, pattern)
            for key, (sub, pattern) in _patterns(subject, session, task, space).items()}


def missing_outputs(fmriprep_dir: str | Path, subject: str, session: str, task: str,
                    space: str) -> list[str]:
    """Names (glob patterns) of the required outputs that are absent."""
    found = expected_files(fmriprep_dir, subject, session, task, space)
    patterns = _patterns(subject, session, task, space)
    return [f"{patterns[key][0]}/{patterns[key][1]}" for key, paths in found.items()
            if not paths and key != "lesion_mask"]


def collect_session(
    fmriprep_dir: str | Path,
    subject: str,
    session: str,
    *,
    t_r: float,
    task: str = "passivewrist",
    space: str = "MNI152NLin2009cAsym",
) -> PreprocessedSession:
    """Return one session's preprocessed files or raise an error listing what is missing."""
    subject = subject.removeprefix("sub-")
    session = session.removeprefix("ses-")
    folder = Path(fmriprep_dir) / f"sub-{subject}" / f"ses-{session}"
    missing = missing_outputs(fmriprep_dir, subject, session, task, space)
    if missing:
        raise InputError(folder, "preprocessed outputs missing: " + ", ".join(missing),
                         "rerun fMRIPrep for this participant or check --fmriprep-dir and --task")
    found = expected_files(fmriprep_dir, subject, session, task, space)
    for key in ("bold", "mask", "confounds"):
        if len(found[key]) > 1:
            names = ", ".join(p.name for p in found[key])
            raise InputError(folder, f"several candidates for the {key}: {names}",
                             "keep one run and one resolution per session")
    lesion = found["lesion_mask"][0] if found["lesion_mask"] else None
    return PreprocessedSession(
        subject=subject,
        session=session,
        bold=str(found["bold"][0]),
        mask=str(found["mask"][0]),
        confounds=str(found["confounds"][0]),
        lesion_mask=None if lesion is None else str(lesion),
        t_r=float(t_r),
    )
