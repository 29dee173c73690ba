"""Checks on the words that end up on a container command line.

Every command is an argv list, so nothing is ever interpreted by a shell; these checks stop the
values that a container engine or fMRIPrep itself would read as something else: a label that is
not a BIDS label (``01;rm -rf ~``, ``../x``), an image name that starts with ``-`` (an engine
option), or a host path with the ``:`` that separates a bind mount's fields.
"""

from __future__ import annotations

import re
from pathlib import Path

from hermesflow.errors import ConfigError, InputError

_LABEL = re.compile(r"[A-Za-z0-9]+")
# An OCI reference: [registry[:port]/]name[:tag][@digest]; no whitespace, no leading '-'.
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*")


def check_label(value: str, entity: str = "participant") -> str:
    """Return a BIDS label without its ``sub-`` / ``ses-`` prefix, or raise ``ConfigError``.

    BIDS labels are alphanumeric, so anything else (separators, path parts, shell syntax,
    whitespace) is rejected rather than quoted: fMRIPrep would not find such a participant
    anyway, and a label that reaches a file name must not climb out of its folder.
    """
    prefix = {"participant": "sub-", "session": "ses-"}.get(entity, "")
    text = str(value)
    if prefix and text.startswith(prefix):
        text = text[len(prefix):]
    if not _LABEL.fullmatch(text):
        raise ConfigError(
            f"{entity} label {value!r} is not a BIDS label -- use letters and digits only "
            f"(e.g. 01 or {prefix or ''}01)"
        )
    return text


def check_image(image: str) -> str:
    """Return ``image`` if it reads as a container image reference (or an image file path)."""
    text = str(image).strip()
    if not text or text != str(image) or text.startswith("-"):
        raise ConfigError(
            f"fMRIPrep image {image!r} is not an image reference -- give a name like "
            "nipreps/fmriprep:25.2.3, a .sif file or a docker:// URI"
        )
    if "://" in text:
        # docker://, library://, oras:// (Apptainer/Singularity); the engine resolves the rest.
        if not _SCHEME.fullmatch(text.split("://", 1)[0]):
            raise ConfigError(
                f"fMRIPrep image {image!r}: {text.split('://', 1)[0]!r} is not a URI scheme "
                "-- use e.g. docker://nipreps/fmriprep:25.2.3"
            )
        return text
    if text.startswith(("/", "./", "../")) or text.endswith((".sif", ".simg")):
        # An Apptainer/Singularity image file: one argv word, spaces and all.
        return text
    if not _IMAGE.fullmatch(text):
        raise ConfigError(
            f"fMRIPrep image {image!r} is not an image reference -- give a name like "
            "nipreps/fmriprep:25.2.3 (letters, digits and ._/:@+- only)"
        )
    return text


def check_mount_source(path: str | Path, *, what: str) -> Path:
    """Return ``path`` made absolute, refusing characters that would split a bind mount spec.

    ``-v SRC:DST:ro`` (Docker, Podman) and ``-B SRC:DST:ro`` (Apptainer) split on ``:``, and
    Apptainer also splits several binds on ``,``; spaces are fine because the spec is one argv
    element.
    """
    absolute = Path(path).expanduser().absolute()
    bad = [ch for ch in (":", ",", "\n", "\r", "\0") if ch in str(absolute)]
    if bad:
        raise InputError(
            absolute,
            f"the {what} path contains {', '.join(repr(ch) for ch in bad)}, which container "
            "engines read as a mount separator",
            "move or symlink it to a path without those characters",
        )
    return absolute
