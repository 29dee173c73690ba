"""Input checks made before any graph runs: the folders, then every session's files.

A session whose inputs fail a check is left out of the run, named in one line; the others go
on.  The checks of raw BIDS inputs live here; a later stage's check (the preprocessed files of
``--preproc existing``) is passed in by the caller, so this stage imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from hermesflow.bids.anat import find_inputs
from hermesflow.bids.layout import session_inputs
from hermesflow.errors import HermesflowError, InputError

SessionCheck = Callable[[str, str], object]
"""``check(subject, session)``: raises a :class:`HermesflowError` when the inputs are unusable."""


def check_paths(bids_dir: str | Path, output_dir: str | Path,
                fmriprep_dir: str | Path | None = None,
                work_dir: str | Path | None = None) -> None:
    """Check the folders of a run: the inputs exist and nothing is written into them.

    OUTPUT_DIR and the work folder may be neither an input nor inside one, nor hold one: a
    run writes ``dataset_description.json`` and removes orphan temporary files in OUTPUT_DIR,
    which must never touch the raw data or fMRIPrep's derivatives.  Under
    ``BIDS_DIR/derivatives`` (the BIDS-App convention) they may live beside fMRIPrep's.

    Parameters
    ----------
    bids_dir, output_dir
        The BIDS-App positional arguments (resolved).
    fmriprep_dir
        An fMRIPrep derivatives folder the run reads (``--preproc existing``), else None.
    work_dir
        Nipype's working folder (resolved), else None.

    Raises
    ------
    InputError
        Naming the folder, the problem and the fix.
    """
    bids, out = Path(bids_dir), Path(output_dir)
    if not bids.is_dir():
        raise InputError(bids, "BIDS folder not found", "check the BIDS_DIR argument")
    if fmriprep_dir is not None and not Path(fmriprep_dir).is_dir():
        raise InputError(fmriprep_dir, "fMRIPrep derivatives folder not found",
                         "pass --fmriprep-dir, or --preproc fmriprep to run fMRIPrep")
    for folder, what, flag in ((out, "output folder", "OUTPUT_DIR"),
                               (work_dir, "work folder", "-w/--work-dir")):
        if folder is not None:
            _check_writable_folder(Path(folder), bids, fmriprep_dir, what, flag)


def _check_writable_folder(folder: Path, bids: Path, fmriprep_dir: str | Path | None,
                           what: str, flag: str) -> None:
    fix = f"set {flag} outside BIDS_DIR (or under BIDS_DIR/derivatives) and outside the " \
          "fMRIPrep folder"
    if folder == bids:
        raise InputError(folder, f"{what} is the raw dataset", fix)
    if bids in folder.parents and "derivatives" not in folder.relative_to(bids).parts:
        raise InputError(folder, f"{what} is inside the raw dataset", fix)
    if folder in bids.parents:
        raise InputError(folder, f"{what} holds the raw dataset ({bids})", fix)
    if fmriprep_dir is not None:
        prep = Path(fmriprep_dir)
        if folder == prep:
            raise InputError(folder, f"{what} is the fMRIPrep derivatives folder", fix)
        if prep in folder.parents:
            raise InputError(folder, f"{what} is inside the fMRIPrep derivatives ({prep})", fix)
        if folder in prep.parents:
            raise InputError(folder, f"{what} holds the fMRIPrep derivatives ({prep})", fix)


def raw_input_checks(bids_dir: str, task: str, preproc: str, *,
                     bold_filters: dict | None = None,
                     conditions: Sequence[str] = ("move",)) -> list[SessionCheck]:
    """The checks of raw inputs that preprocessing source ``preproc`` needs.

    ``native`` registers through the T1w and carries the lesion mask, so it needs those
    (:func:`~hermesflow.bids.anat.find_inputs`); every source needs the BOLD runs (those
    ``bold_filters`` select, pybids keywords from ``--bids-filter-file``), their sidecars and
    events holding every modelled condition (:func:`~hermesflow.bids.layout.session_inputs`).
    """
    raw = partial(session_inputs, bids_dir, task=task, bold_filters=bold_filters or None,
                  conditions=tuple(conditions))
    if preproc == "native":
        return [partial(find_inputs, bids_dir, task=task), raw]
    return [raw]


def check_sessions(pairs: Sequence[tuple[str, str]], checks: Sequence[SessionCheck]
                   ) -> tuple[list[tuple[str, str]], list[str]]:
    """Run every check on every ``(subject, session)``; a session stops at its first problem.

    Returns
    -------
    good
        The pairs that passed every check, in the order given.
    problems
        One line per failed pair: ``sub-X ses-Y: <the error's message>``.
    """
    good, problems = [], []
    for subject, session in pairs:
        try:
            for check in checks:
                check(subject, session)
        except HermesflowError as err:
            problems.append(f"sub-{subject} ses-{session}: {err}")
        else:
            good.append((subject, session))
    return good, problems
