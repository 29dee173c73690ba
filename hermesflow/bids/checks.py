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
                fmriprep_dir: str | Path | None = None) -> None:
    """Check the folders of a run: BIDS_DIR exists, OUTPUT_DIR is not inside the raw data.

    Parameters
    ----------
    bids_dir, output_dir
        The BIDS-App positional arguments (resolved).
    fmriprep_dir
        An fMRIPrep derivatives folder the run reads (``--preproc existing``), else None.

    Raises
    ------
    InputError
        Naming the folder, the problem and the fix.
    """
    bids, out = Path(bids_dir), Path(output_dir)
    if not bids.is_dir():
        raise InputError(bids, "BIDS folder not found", "check the BIDS_DIR argument")
    if out == bids or bids in out.parents and "derivatives" not in out.relative_to(bids).parts:
        raise InputError(out, "output folder is inside the raw dataset",
                         "write outputs outside BIDS_DIR or under BIDS_DIR/derivatives")
    if fmriprep_dir is not None and not Path(fmriprep_dir).is_dir():
        raise InputError(fmriprep_dir, "fMRIPrep derivatives folder not found",
                         "pass --fmriprep-dir, or --preproc fmriprep to run fMRIPrep")


def raw_input_checks(bids_dir: str, task: str, preproc: str) -> list[SessionCheck]:
    """The checks of raw inputs that preprocessing source ``preproc`` needs.

    ``native`` registers through the T1w and carries the lesion mask, so it needs those
    (:func:`~hermesflow.bids.anat.find_inputs`); the others need the BOLD run, its sidecar
    and the events (:func:`~hermesflow.bids.layout.session_inputs`).
    """
    if preproc == "native":
        return [partial(find_inputs, bids_dir, task=task)]
    return [partial(session_inputs, bids_dir, task=task)]


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
