"""The preprocessed-data contract: find one session's fMRIPrep outputs, whoever made them.

Whatever the source (fMRIPrep in a container, the native antspyx path, or a folder the user
already has), the GLM reads a :class:`PreprocessedSession`: per run, the BOLD series in the
chosen template space (and resolution), its brain mask and the confounds table with fMRIPrep's
column names; per session, the lesion mask in the same space or, since fMRIPrep never writes
one, the raw lesion mask and fMRIPrep's own transforms to carry it there.

File names are parsed into BIDS entities, never matched with loose globs, so that the layouts
fMRIPrep 25.x writes (its CI output lists, ``.circleci/ds*_outputs.txt`` in nipreps/fmriprep)
are read as fMRIPrep means them:

* several runs (``run-1``, ``run-2``) are several runs, each with its own mask and confounds;
* per-echo outputs (``echo-1_desc-preproc_bold``, no space) are not runs: the optimally
  combined series has no ``echo`` entity;
* ``space-MNI152NLin2009cAsym`` and ``space-MNI152NLin2009cAsym_res-2`` are two resolutions of
  one template: choose one with ``--output-space MNI152NLin2009cAsym:res-2``;
* anatomical files may be at session level (``sub-X/ses-Y/anat``, fMRIPrep's session-wise
  anatomical reference) or subject level (``sub-X/anat``); session level wins.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hermesflow.bids.layout import only_run
from hermesflow.errors import InputError

# Entities that say where a run's data are, not which run they are.
_PLACEMENT = {"sub", "ses", "space", "res", "den", "desc", "cohort"}
_NIFTI = (".nii.gz", ".nii")


@dataclass(frozen=True)
class OutputSpace:
    """A template space and, optionally, its resolution (fMRIPrep's ``--output-spaces`` form).

    ``OutputSpace.parse("MNI152NLin2009cAsym:res-2")`` selects ``space-MNI152NLin2009cAsym_res-2``
    files; without ``:res-`` any single resolution is accepted and several are an error.
    """

    name: str = "MNI152NLin2009cAsym"
    res: str | None = None

    @classmethod
    def parse(cls, text: str | OutputSpace) -> OutputSpace:
        if isinstance(text, OutputSpace):
            return text
        name, _, modifiers = str(text).partition(":")
        res = None
        for modifier in filter(None, modifiers.split(":")):
            key, _, value = modifier.partition("-")
            if key != "res" or not value:
                raise InputError(None, f"output space {text!r}: unknown modifier {modifier!r}",
                                 "write it as SPACE or SPACE:res-N, as fMRIPrep does")
            res = value
        if not re.fullmatch(r"[A-Za-z0-9]+", name):
            raise InputError(None, f"output space {text!r} is not a template name",
                             "write it as SPACE or SPACE:res-N, e.g. MNI152NLin2009cAsym:res-2")
        return cls(name, res)

    def __str__(self) -> str:
        return self.name + (f":res-{self.res}" if self.res else "")

    def entities(self) -> str:
        return f"space-{self.name}" + (f"_res-{self.res}" if self.res else "")


@dataclass(frozen=True)
class BIDSName:
    """A file name split into its entities, suffix and extension."""

    path: Path
    entities: dict[str, str]
    suffix: str
    extension: str

    @classmethod
    def parse(cls, path: Path) -> BIDSName | None:
        name = path.name
        extension = next((e for e in (*_NIFTI, ".tsv", ".json", ".h5", ".txt")
                          if name.endswith(e)), "")
        if not extension or name.startswith("."):
            return None
        *pairs, suffix = name[: -len(extension)].split("_")
        entities = {}
        for pair in pairs:
            key, sep, value = pair.partition("-")
            if not sep or not value:
                return None
            entities[key] = value
        return cls(path, entities, suffix, extension)

    def run_key(self) -> tuple[tuple[str, str], ...]:
        """The entities that identify the run (task, acq, run, ...), not its placement."""
        return tuple(sorted((k, v) for k, v in self.entities.items() if k not in _PLACEMENT))


@dataclass(frozen=True)
class PreprocessedRun:
    """One preprocessed run: BOLD, brain mask and confounds, with the run's own entities."""

    label: str
    bold: str
    mask: str
    confounds: str
    sidecar: str | None = None


@dataclass(frozen=True)
class PreprocessedSession:
    """One session's preprocessed files (see the module docstring for what is accepted)."""

    subject: str
    session: str
    space: str
    runs: tuple[PreprocessedRun, ...]
    lesion_mask: str | None
    t_r: float
    # When no lesion mask exists in ``space``: fMRIPrep's anatomical transforms, applied last
    # first (``from-T1w_to-<space>`` then ``from-orig_to-T1w``), carry the raw one there.
    lesion_transforms: tuple[str, ...] = field(default_factory=tuple)

    @property
    def single_run(self) -> PreprocessedRun:
        return only_run(self.runs)

    @property
    def bold(self) -> str:
        return self.single_run.bold

    @property
    def mask(self) -> str:
        return self.single_run.mask

    @property
    def confounds(self) -> str:
        return self.single_run.confounds

    def to_dict(self) -> dict:
        return asdict(self)


def _names(folder: Path) -> list[BIDSName]:
    if not folder.is_dir():
        return []
    return [n for n in map(BIDSName.parse, sorted(folder.iterdir())) if n is not None]


def _matches(name: BIDSName, wanted: dict[str, str]) -> bool:
    return all(_same_label(name.entities.get(k), v) for k, v in wanted.items())


def _same_label(found: str | None, wanted: str | None) -> bool:
    if wanted is None:
        return found is None
    if found is None:
        return False
    # fMRIPrep keeps the run label as written in the raw name: run-1 and run-01 are one run.
    if found.isdigit() and str(wanted).isdigit():
        return int(found) == int(wanted)
    return found == str(wanted)


def _choose_resolution(bolds: list[BIDSName], space: OutputSpace, folder: Path) -> str | None:
    found = sorted({n.entities.get("res") for n in bolds}, key=lambda r: (r is None, r or ""))
    if space.res is not None or len(found) <= 1:
        return space.res if space.res is not None else (found[0] if found else None)
    shown = ", ".join(f"space-{space.name}" + (f"_res-{r}" if r else "") for r in found)
    example = next((r for r in found if r), "2")
    raise InputError(folder, f"several resolutions of {space.name}: {shown}",
                     f"choose one with --output-space {space.name}:res-{example}")


def find_runs(func: Path, subject: str, session: str, task: str, space: OutputSpace,
              run_filter: dict[str, str] | None = None, require_confounds: bool = True,
              ) -> tuple[list[PreprocessedRun], list[str]]:
    """The session's preprocessed runs of ``task`` in ``space``, and what is missing
    (a model without confounds, ``require_confounds=False``, needs no confounds table)."""
    names = _names(func)
    base = {"sub": subject, "ses": session, "task": task}
    bolds = [n for n in names if n.suffix == "bold" and n.extension in _NIFTI
             and n.entities.get("desc") == "preproc" and n.entities.get("space") == space.name
             and "echo" not in n.entities and _matches(n, base)
             and all(_same_label(n.entities.get(k), v) for k, v in (run_filter or {}).items())]
    if not bolds:
        return [], [f"func/sub-{subject}_ses-{session}_task-{task}[_run-N]_{space.entities()}"
                    "_desc-preproc_bold.nii.gz"]
    res = _choose_resolution(bolds, space, func)
    bolds = [n for n in bolds if n.entities.get("res") == res]
    placed = {"space": space.name, "res": res}
    runs, missing = [], []
    for bold in bolds:
        key = dict(bold.run_key())
        masks = [n for n in names if n.suffix == "mask" and n.entities.get("desc") == "brain"
                 and n.extension in _NIFTI and n.run_key() == bold.run_key()
                 and _matches(n, placed)]
        confounds = [n for n in names if n.suffix == "timeseries" and n.extension == ".tsv"
                     and n.entities.get("desc") == "confounds" and n.run_key() == bold.run_key()
                     and "space" not in n.entities]
        stem = bold.path.name.split("_desc-preproc")[0]
        if not masks:
            missing.append(f"func/{stem}_desc-brain_mask.nii.gz")
        if not confounds and require_confounds:
            missing.append(f"func/{stem.split('_space-')[0]}_desc-confounds_timeseries.tsv")
        if masks and (confounds or not require_confounds):
            sidecar = bold.path.with_name(bold.path.name.split(".nii")[0] + ".json")
            label = "_".join(f"{k}-{v}" for k, v in key.items() if k != "task") or "run-1"
            runs.append(PreprocessedRun(label, str(bold.path), str(masks[0].path),
                                        str(confounds[0].path) if confounds else "",
                                        str(sidecar) if sidecar.exists() else None))
    return runs, missing


def _anat_folders(fmriprep_dir: Path, subject: str, session: str) -> list[tuple[Path, dict]]:
    """Session-level anat first (fMRIPrep's session-wise reference), then subject level."""
    root = fmriprep_dir / f"sub-{subject}"
    return [(root / f"ses-{session}" / "anat", {"sub": subject, "ses": session}),
            (root / "anat", {"sub": subject})]


def find_lesion(fmriprep_dir: Path, subject: str, session: str,
                space: OutputSpace, res: str | None) -> str | None:
    """A lesion mask already in ``space`` (written by hermesflow or the user), if any."""
    for folder, base in _anat_folders(fmriprep_dir, subject, session):
        for name in _names(folder):
            if (name.suffix == "roi" and name.entities.get("label") == "lesion"
                    and name.extension in _NIFTI and name.entities.get("space") == space.name
                    and _same_label(name.entities.get("ses"), base.get("ses"))
                    and (res is None or name.entities.get("res") in (res, None))):
                return str(name.path)
    return None


def find_anat_transforms(fmriprep_dir: Path, subject: str, session: str,
                         space: OutputSpace) -> tuple[str, ...]:
    """fMRIPrep's transforms from the session's T1w to ``space``, in ANTs order (last first).

    ``from-T1w_to-<space>_mode-image_xfm.h5`` maps the anatomical reference to the template;
    where the session's T1w is not itself the reference (a subject template built from several
    sessions), ``from-orig_to-T1w_mode-image_xfm.txt`` of that session comes first.
    """
    to_template, from_orig = None, None
    for folder, base in _anat_folders(fmriprep_dir, subject, session):
        for name in _names(folder):
            entities = name.entities
            if name.suffix != "xfm" or entities.get("mode") != "image":
                continue
            if (to_template is None and entities.get("from") == "T1w"
                    and entities.get("to") == space.name
                    and _same_label(entities.get("ses"), base.get("ses"))):
                to_template = str(name.path)
            if (from_orig is None and entities.get("from") == "orig"
                    and entities.get("to") == "T1w" and entities.get("ses") == session):
                from_orig = str(name.path)
    if to_template is None:
        return ()
    return (to_template,) + ((from_orig,) if from_orig else ())


def missing_outputs(fmriprep_dir: str | Path, subject: str, session: str, task: str,
                    space: str | OutputSpace) -> list[str]:
    """Names of the required outputs that are absent (empty: the session is complete)."""
    func = Path(fmriprep_dir) / f"sub-{subject}" / f"ses-{session}" / "func"
    try:
        runs, missing = find_runs(func, subject, session, task, OutputSpace.parse(space))
    except InputError as err:
        return [str(err)]
    return missing if missing or runs else ["func/*_desc-preproc_bold.nii.gz"]


def collect_session(
    fmriprep_dir: str | Path,
    subject: str,
    session: str,
    *,
    t_r: float,
    task: str = "passivewrist",
    space: str | OutputSpace = "MNI152NLin2009cAsym",
    run_filter: dict[str, str] | None = None,
    require_confounds: bool = True,
) -> PreprocessedSession:
    """Return one session's preprocessed files or raise an error listing what is missing.

    Parameters
    ----------
    fmriprep_dir : path
        The fMRIPrep derivatives folder.
    subject, session : str
        Labels, with or without prefix.
    t_r : float
        Repetition time (from the raw sidecar).
    task : str
        Task label.
    space : str or OutputSpace
        ``NAME`` or ``NAME:res-N``.
    run_filter : dict, optional
        Entities a run must have (``{"run": "1"}``), from ``--bids-filter-file``.
    require_confounds : bool
        False for a model without confounds: a run needs no confounds table (``""``).
    """
    subject, session = subject.removeprefix("sub-"), session.removeprefix("ses-")
    space = OutputSpace.parse(space)
    root = Path(fmriprep_dir)
    folder = root / f"sub-{subject}" / f"ses-{session}"
    runs, missing = find_runs(folder / "func", subject, session, task, space, run_filter,
                              require_confounds)
    if missing:
        raise InputError(folder, "preprocessed outputs missing: " + ", ".join(missing),
                         "rerun fMRIPrep for this participant or check --fmriprep-dir, --task "
                         "and --output-space")
    res = OutputSpace.parse(str(space)).res or BIDSName.parse(Path(runs[0].bold)).entities.get(
        "res")
    lesion = find_lesion(root, subject, session, space, res)
    transforms = () if lesion else find_anat_transforms(root, subject, session, space)
    return PreprocessedSession(
        subject=subject, session=session, space=space.name, runs=tuple(runs),
        lesion_mask=lesion, t_r=float(t_r), lesion_transforms=transforms,
    )
