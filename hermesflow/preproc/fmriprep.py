"""fMRIPrep for one participant (all sessions in one call), in a container, from Nipype.

:func:`run_fmriprep_participant` does the work and is tested without Nipype:

1. checks what can be checked before anything starts (labels, folders, the licence, the
   participant's sessions, the engine, the image) and records the image digest;
2. skips the run when the output folder already holds this participant's derivatives made
   from the same inputs, image and settings (a stamp in ``OUTPUT/.hermesflow/``);
3. runs fMRIPrep with its output in a log file (non-zero exit: the log's tail in the error);
4. checks every session's outputs against the contract of ``--preproc existing``
   (:func:`hermesflow.preproc.collect.missing_outputs`) and lists what fMRIPrep did not produce.

:class:`FMRIPrep` is the thin ``SimpleInterface`` over it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hermesflow import __version__
from hermesflow.containers import (
    ContainerError,
    FMRIPrepOptions,
    check_image,
    check_label,
    default_image,
    fmriprep_invocation,
    fmriprep_provenance,
    get_engine,
    resolve_license,
    run_invocation,
)
from hermesflow.containers.fmriprep import check_layout
from hermesflow.derivatives.writing import write_text
from hermesflow.preproc.collect import missing_outputs

LOGGER = logging.getLogger("hermesflow")
STAMP_DIR = ".hermesflow"
# Options that change how fast fMRIPrep runs, not what it writes.
_RESOURCE_OPTIONS = ("nthreads", "omp_nthreads", "mem_mb", "skip_bids_validation", "notrack")


class FMRIPrepOutputError(ContainerError):
    """fMRIPrep finished but did not write every output the pipeline needs."""


@dataclass
class FMRIPrepResult:
    """What one participant's fMRIPrep step produced."""

    fmriprep_dir: str
    participant: str
    sessions: list[str]
    ran: bool
    command: list[str] = field(default_factory=list)
    log_file: str = ""
    provenance: dict = field(default_factory=dict)


def participant_sessions(bids_dir: str | Path, participant: str, task: str) -> list[str]:
    """Labels of the participant's sessions that have a BOLD run of ``task``."""
    from hermesflow.bids.layout import query_sessions

    return [ses for _, ses in query_sessions(str(bids_dir), task, [participant])]


def _fingerprint(folder: Path) -> dict[str, list[int]]:
    """Relative path -> [size, mtime_ns] of every file below ``folder``."""
    if not folder.is_dir():
        return {}
    return {
        str(path.relative_to(folder)): [path.stat().st_size, path.stat().st_mtime_ns]
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def _stamp_path(output_dir: Path, participant: str) -> Path:
    return output_dir / STAMP_DIR / f"sub-{participant}_fmriprep.json"


def _settings(image: str, digest: str | None, options: FMRIPrepOptions) -> dict:
    chosen = {k: v for k, v in asdict(options).items() if k not in _RESOURCE_OPTIONS}
    chosen = {k: list(v) if isinstance(v, tuple) else v for k, v in chosen.items()}
    return {"image": image, "digest": digest, "options": chosen}


def _outputs_unchanged(output_dir: Path, participant: str, recorded: dict) -> bool:
    current = _fingerprint(output_dir / f"sub-{participant}")
    return bool(recorded) and all(
        name in current and current[name][0] == size for name, (size, _) in recorded.items()
    )


def is_up_to_date(
    output_dir: Path, participant: str, sessions: list[str], settings: dict, inputs: dict,
    *, task: str, space: str,
) -> bool:
    """True when a previous run's stamp matches and its outputs are all still there."""
    stamp = _stamp_path(output_dir, participant)
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    if (recorded.get("settings") != settings or recorded.get("inputs") != inputs
            or recorded.get("sessions") != sessions):
        return False
    if any(missing_outputs(output_dir, participant, ses, task, space) for ses in sessions):
        return False
    return _outputs_unchanged(output_dir, participant, recorded.get("outputs", {}))


def _write_stamp(output_dir: Path, participant: str, record: dict) -> None:
    stamp = _stamp_path(output_dir, participant)
    write_text(stamp, json.dumps(record, indent=2, sort_keys=True))


def check_outputs(output_dir: Path, participant: str, sessions: list[str], *, task: str,
                  space: str, log_file: str | Path | None = None) -> None:
    """Raise :class:`FMRIPrepOutputError` listing, per session, every missing output."""
    missing = {ses: missing_outputs(output_dir, participant, ses, task, space)
               for ses in sessions}
    missing = {ses: names for ses, names in missing.items() if names}
    if not missing:
        return
    lines = [f"    sub-{participant}/ses-{ses}/{name}"
             for ses, names in missing.items() for name in names]
    where = f" (its log: {log_file})" if log_file else ""
    raise FMRIPrepOutputError(
        f"{output_dir}: fMRIPrep did not produce {len(lines)} required output(s) for "
        f"sub-{participant}{where}:\n" + "\n".join(lines)
        + f"\n-- check the log and fMRIPrep's report sub-{participant}.html; "
        "--output-spaces must include the space the pipeline reads "
        f"({space}), and each session needs a BOLD run of task '{task}'"
    )


def run_fmriprep_participant(
    *,
    bids_dir: str | Path,
    output_dir: str | Path,
    work_dir: str | Path,
    participant_label: str,
    engine: str = "docker",
    image: str = "",
    fs_license_file: str | Path | None = None,
    templateflow_home: str | Path | None = None,
    options: FMRIPrepOptions | None = None,
    space: str = "MNI152NLin2009cAsym",
    sessions: list[str] | None = None,
    log_dir: str | Path | None = None,
    executable: str = "",
    user: tuple[int, int] | None = None,
) -> FMRIPrepResult:
    """Run fMRIPrep on one participant unless its derivatives are already there.

    Parameters
    ----------
    bids_dir, output_dir, work_dir
        The BIDS dataset (mounted read-only), fMRIPrep's output folder (shared by all
        participants) and this participant's fMRIPrep work folder.
    participant_label
        With or without ``sub-``; letters and digits only.
    engine, image, executable, user
        ``docker``, ``podman``, ``apptainer``, ``singularity`` or ``none``; the image (default
        the pinned fMRIPrep release); the engine's command; ``(uid, gid)`` to run as.
    fs_license_file, templateflow_home
        The FreeSurfer licence (else ``$FS_LICENSE``) and a TemplateFlow cache to mount.
    options
        fMRIPrep's options; ``options.task`` also selects the sessions to check.
    sessions
        The sessions to check (default: those with a BOLD run of the task in BIDS).
    log_dir
        Where fMRIPrep's log goes (default: ``work_dir``).

    Returns
    -------
    FMRIPrepResult
    """
    options = options or FMRIPrepOptions()
    task = options.task or "passivewrist"
    participant = check_label(participant_label)
    container = get_engine(engine, executable=executable, user=user)
    image = check_image(image or default_image(container))
    bids_dir, output_dir, work_dir = (Path(p).absolute() for p in (bids_dir, output_dir, work_dir))
    check_layout(bids_dir, output_dir, work_dir)
    licence = resolve_license(fs_license_file)
    sessions = sorted(sessions or participant_sessions(bids_dir, participant, task))

    if not any((bids_dir / f"sub-{participant}").rglob("*label-lesion_roi.nii*")):
        # fMRIPrep masks the registration cost with sub-X[_ses-Y]_T1w_label-lesion_roi from
        # BIDS anat by itself; without one, registration of a lesioned brain is less reliable.
        LOGGER.warning("sub-%s: no *_label-lesion_roi.nii[.gz] in BIDS anat; fMRIPrep will "
                       "register without lesion masking", participant)
    container.check_available()
    container.check_image(image)
    digest = container.image_digest(image)
    provenance = fmriprep_provenance(container, image, digest)
    settings = _settings(image, digest, options)
    inputs = _fingerprint(bids_dir / f"sub-{participant}")

    if is_up_to_date(output_dir, participant, sessions, settings, inputs, task=task, space=space):
        LOGGER.info("sub-%s: fMRIPrep derivatives in %s are up to date; not run again",
                    participant, output_dir)
        return FMRIPrepResult(str(output_dir), participant, sessions, ran=False,
                              provenance=provenance)

    for folder in (output_dir, work_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if templateflow_home:
        Path(templateflow_home).mkdir(parents=True, exist_ok=True)
    invocation = fmriprep_invocation(
        container, image, bids_dir=bids_dir, output_dir=output_dir, work_dir=work_dir,
        participant_label=participant, fs_license_file=licence,
        templateflow_home=templateflow_home, options=options,
    )
    log_file = Path(log_dir or work_dir) / f"sub-{participant}_fmriprep.log"
    LOGGER.info("sub-%s: running fMRIPrep: %s", participant, invocation)
    run_invocation(invocation, log_file, what=f"fMRIPrep (sub-{participant}, {image})")
    check_outputs(output_dir, participant, sessions, task=task, space=space, log_file=log_file)

    _write_stamp(output_dir, participant, {
        "participant": participant,
        "sessions": sessions,
        "settings": settings,
        "inputs": inputs,
        "outputs": _fingerprint(output_dir / f"sub-{participant}"),
        "command": invocation.argv,
        "provenance": provenance,
        "hermesflow_version": __version__,
    })
    return FMRIPrepResult(str(output_dir), participant, sessions, ran=True,
                          command=invocation.argv, log_file=str(log_file), provenance=provenance)


# -- Nipype ---------------------------------------------------------------------------------------
