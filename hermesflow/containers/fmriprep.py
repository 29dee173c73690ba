"""fMRIPrep's command line for one participant, in any engine, and running it.

:func:`fmriprep_invocation` is pure (it only builds lists), so every engine's argv is unit
tested; :func:`run_invocation` runs one with its output in a log file and, when fMRIPrep fails,
raises an error carrying the log's tail.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hermesflow.containers.engines import ContainerEngine, ContainerError, Mount
from hermesflow.containers.labels import check_label
from hermesflow.errors import InputError

#: The fMRIPrep release this version of hermesflow was written against.
FMRIPREP_VERSION = "25.2.3"
DEFAULT_FMRIPREP_IMAGE = f"nipreps/fmriprep:{FMRIPREP_VERSION}"
DEFAULT_OUTPUT_SPACES = ("MNI152NLin2009cAsym:res-2",)

# Where things appear inside the container: the layout of fmriprep-docker, so logs read alike.
BIDS_TARGET = "/data"
OUTPUT_TARGET = "/out"
WORK_TARGET = "/work"
LICENSE_TARGET = "/opt/freesurfer/license.txt"
TEMPLATEFLOW_TARGET = "/templateflow"


_VERSION = re.compile(r"\d+\.\d+\.\d+(?:rc\d+|\.post\d+|\.dev\d+)?")


class FMRIPrepFailedError(ContainerError):
    """fMRIPrep (or its engine) exited non-zero."""


@dataclass(frozen=True)
class FMRIPrepOptions:
    """What fMRIPrep computes and with which resources (our defaults)."""

    output_spaces: tuple[str, ...] = DEFAULT_OUTPUT_SPACES
    fs_reconall: bool = False
    nthreads: int | None = None
    omp_nthreads: int | None = None
    mem_mb: int | None = None
    #: Pass ``--skip-bids-validation``: only when hermesflow validated the dataset itself.
    skip_bids_validation: bool = False
    #: Restrict BOLD processing to one task (``--task-id``).
    task: str | None = None
    #: ``--notrack``: the containers often have no network, and the trial data are private.
    notrack: bool = True
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Invocation:
    """One ready-to-run command: ``argv`` for the host, ``env`` added to the host process."""

    argv: list[str]
    #: What fMRIPrep itself receives (the words after the image).
    fmriprep_args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()

    def __str__(self) -> str:
        return shlex.join(self.argv)


def default_image(engine: ContainerEngine) -> str:
    """The pinned fMRIPrep image in the form ``engine`` understands."""
    if engine.name in ("apptainer", "singularity"):
        return f"docker://{DEFAULT_FMRIPREP_IMAGE}"
    return DEFAULT_FMRIPREP_IMAGE


def resolve_license(path: str | Path | None = None) -> Path:
    """The FreeSurfer licence file: ``path``, else ``$FS_LICENSE``, else FreeSurfer's own.

    fMRIPrep refuses to start without one, even with ``--fs-no-reconall``.
    """
    fix = (
        "give the path of license.txt with --fs-license-file (free from "
        "https://surfer.nmr.mgh.harvard.edu/registration.html)"
    )
    named = path or os.environ.get("FS_LICENSE")
    if named:
        candidate = Path(named).expanduser()
        if not candidate.is_file():
            source = "" if path else " (from $FS_LICENSE)"
            raise InputError(candidate, f"FreeSurfer licence file not found{source}", fix)
        return candidate.absolute()
    if os.environ.get("FREESURFER_HOME"):
        candidate = Path(os.environ["FREESURFER_HOME"]) / "license.txt"
        if candidate.is_file():
            return candidate.absolute()
    raise InputError(None, "no FreeSurfer licence file: fMRIPrep does not start without one", fix)


def check_layout(bids_dir: Path, output_dir: Path, work_dir: Path) -> None:
    """The folder rules fMRIPrep enforces, checked before any container starts."""
    if not (bids_dir / "dataset_description.json").is_file():
        raise InputError(
            bids_dir, "not a BIDS dataset (no dataset_description.json)",
            "give the root of the BIDS dataset",
        )
    if output_dir == bids_dir:
        raise InputError(
            output_dir, "the fMRIPrep output folder is the BIDS input folder",
            f"write the outputs elsewhere, e.g. {bids_dir / 'derivatives' / 'fmriprep'}",
        )
    if work_dir == bids_dir or bids_dir in work_dir.parents:
        raise InputError(
            work_dir, "the fMRIPrep work folder is inside the BIDS input folder",
            "choose a work folder (-w) outside the dataset",
        )


def fmriprep_invocation(
    engine: ContainerEngine,
    image: str,
    *,
    bids_dir: str | Path,
    output_dir: str | Path,
    work_dir: str | Path,
    participant_label: str,
    fs_license_file: str | Path,
    templateflow_home: str | Path | None = None,
    options: FMRIPrepOptions | None = None,
) -> Invocation:
    """The command that runs fMRIPrep on one participant (all of its sessions).

    The BIDS folder is mounted read-only, the output and work folders read-write; the licence
    is mounted read-only at FreeSurfer's default place and also named with
    ``--fs-license-file``; a TemplateFlow cache, when given, is mounted read-write (fMRIPrep
    adds the templates it fetches) and named by ``TEMPLATEFLOW_HOME``.
    """
    options = options or FMRIPrepOptions()
    label = check_label(participant_label)
    mounts = [
        Mount.checked(bids_dir, BIDS_TARGET, read_only=True, what="BIDS"),
        Mount.checked(output_dir, OUTPUT_TARGET, read_only=False, what="fMRIPrep output"),
        Mount.checked(work_dir, WORK_TARGET, read_only=False, what="work"),
        Mount.checked(fs_license_file, LICENSE_TARGET, read_only=True, what="licence"),
    ]
    if templateflow_home:
        mounts.append(
            Mount.checked(templateflow_home, TEMPLATEFLOW_TARGET, read_only=False,
                          what="TemplateFlow")
        )

    def inside(mount: Mount) -> str:
        return mount.target if engine.maps_paths else str(mount.source)

    bids, out, work, licence = (inside(m) for m in mounts[:4])
    args = [bids, out, "participant", "--participant-label", label, "-w", work]
    if options.output_spaces:
        args += ["--output-spaces", *options.output_spaces]
    if not options.fs_reconall:
        args.append("--fs-no-reconall")
    args += ["--fs-license-file", licence]
    if options.task:
        args += ["--task-id", check_label(options.task, "task")]
    if options.nthreads:
        args += ["--nthreads", str(int(options.nthreads))]
    if options.omp_nthreads:
        args += ["--omp-nthreads", str(int(options.omp_nthreads))]
    if options.mem_mb:
        args += ["--mem-mb", str(int(options.mem_mb))]
    if options.skip_bids_validation:
        args.append("--skip-bids-validation")
    if options.notrack:
        args.append("--notrack")
    args += list(options.extra_args)

    env = {"TEMPLATEFLOW_HOME": inside(mounts[4])} if templateflow_home else {}
    argv = engine.run_argv(image, args, mounts=mounts, env=env)
    return Invocation(argv=argv, fmriprep_args=args, env=engine.host_env(env),
                      mounts=tuple(mounts))


def fmriprep_provenance(engine: ContainerEngine, image: str, digest: str | None) -> dict:
    """A BIDS ``GeneratedBy`` entry for fMRIPrep run from ``image``.

    ``Container.URI`` pins the image by content: ``docker://NAME@sha256:...`` for Docker and
    Podman images, the image file (with its sha256 in ``Digest``) for Apptainer/Singularity.
    """
    reference = image.split("://", 1)[-1]
    name, _, _ = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    found = _VERSION.search(last.rsplit(":", 1)[-1])
    version = found.group(0) if found else (last.rsplit(":", 1)[1] if ":" in last else "unknown")
    entry: dict = {"Name": "fMRIPrep", "Version": version,
                   "CodeURL": "https://github.com/nipreps/fmriprep"}
    if engine.name == "none":
        return entry
    container: dict = {"Type": engine.name, "Tag": image}
    if digest and engine.name in ("docker", "podman"):
        repository = name.rsplit(":", 1)[0] if ":" in last else name
        container["URI"] = f"docker://{repository}@{digest}"
    elif digest:
        container["URI"] = Path(reference).absolute().as_uri()
        container["Digest"] = digest
    entry["Container"] = container
    return entry


def run_invocation(
    invocation: Invocation,
    log_file: str | Path,
    *,
    what: str = "fMRIPrep",
    tail_lines: int = 40,
) -> None:
    """Run ``invocation`` with stdout and stderr in ``log_file``; raise with the log's tail."""
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **invocation.env}
    with log_file.open("w") as log:
        log.write(f"$ {invocation}\n")
        log.flush()
        try:
            done = subprocess.run(
                invocation.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, check=False,
            )
        except OSError as err:
            raise ContainerError(
                f"{invocation.argv[0]}: could not start ({err}) -- check that the engine is "
                "installed and executable"
            ) from err
    if done.returncode != 0:
        tail = _tail(log_file, tail_lines)
        raise FMRIPrepFailedError(
            f"{what} exited with status {done.returncode}; command: {invocation}\n"
            f"last {len(tail)} lines of {log_file}:\n" + "\n".join(f"    {line}" for line in tail)
            + f"\n-- read {log_file} (and the crash files in the work folder) and fix the cause"
        )


def _tail(path: Path, lines: int) -> list[str]:
    with path.open(errors="replace") as handle:
        return [line.rstrip("\n") for line in deque(handle, maxlen=lines)]


def describe(argv: Sequence[str]) -> str:
    """A copy-pasteable rendering of an argv (for logs and error messages only)."""
    return shlex.join(list(argv))
