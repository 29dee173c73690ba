"""Run the official BIDS validator (``bids-validator-deno``, schema-based, offline)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from hermesflow.errors import InputError

VALIDATOR = "bids-validator-deno"


@dataclass(frozen=True)
class Issue:
    """One finding of the validator: its code, where, and the validator's own words."""

    severity: str
    code: str
    location: str
    message: str
    description: str = ""

    def __str__(self) -> str:
        return f"{self.code} at {self.location or '(dataset)'}: {self.words}".strip()

    @property
    def words(self) -> str:
        """The validator's description of the code, then its message, on one line."""
        return " ".join(f"{self.description} {self.message}".split())

    @property
    def session(self) -> tuple[str, str | None] | None:
        """``(subject, session)`` the finding belongs to; session None for a whole participant
        (``sub-X/sub-X_sessions.tsv``, session-less files); None for the dataset."""
        found = _SESSION.match(self.location or "")
        return None if found is None else (found["subject"], found["session"])


_SESSION = re.compile(r"^/?sub-(?P<subject>[A-Za-z0-9]+)/(?:ses-(?P<session>[A-Za-z0-9]+)/)?")


def validator_path() -> str | None:
    """The validator next to this Python (a venv install), else on PATH."""
    beside = Path(sys.executable).parent / VALIDATOR
    return str(beside) if beside.exists() else shutil.which(VALIDATOR)


def validate(dataset: str | Path, *, timeout: float = 600) -> list[Issue]:
    """All issues the validator reports on ``dataset`` (errors and warnings)."""
    exe = validator_path()
    if exe is None:
        raise InputError(None, f"{VALIDATOR} is not installed",
                         f"pip install {VALIDATOR}, or pass --skip-bids-validation")
    result = subprocess.run([exe, str(dataset), "--format", "json"], capture_output=True,
                            text=True, timeout=timeout, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InputError(dataset, f"the BIDS validator failed ({tail[0]})",
                         "run bids-validator-deno by hand to see why") from None
    messages = report["issues"].get("codeMessages", {})
    return [Issue(i.get("severity", ""), i.get("code", ""), i.get("location", ""),
                  i.get("issueMessage", "") or "",
                  _first_sentence(messages.get(i.get("code", ""), "")))
            for i in report["issues"]["issues"]]


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    head, dot, _ = text.partition(". ")
    return head + "." if dot else text


@dataclass(frozen=True)
class Findings:
    """The validator's report split by where it applies.

    Attributes
    ----------
    warnings
        Every warning (logged, never fatal).
    errors
        ``(subject, session)`` -> that session's errors; session None: every session of the
        participant.
    """

    dataset: str
    warnings: list[Issue]
    errors: dict[tuple[str, str | None], list[Issue]]

    def check_session(self, subject: str, session: str) -> None:
        """Raise the first validator error of this session (or of its participant)."""
        found = self.errors.get((subject, session)) or self.errors.get((subject, None))
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            first = found[0]
            raise InputError(Path(self.dataset) / first.location.lstrip("/"),
                             f"BIDS validator {first.code}: {first.words}{more}",
                             "fix the file named, or leave the session out "
                             "(--session-label, or --skip-bids-validation)")


def tree_stamp(root: str | Path, skip: tuple[str, ...] = ()) -> str:
    """SHA-256 of every file's path (relative to ``root``), size and modification time.

    What a file listing can tell without reading a byte: a file added, removed, rewritten or
    touched changes it.  Top-level entries named in ``skip`` are left out.
    """
    root = str(root)
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if folder == root:
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except OSError:  # removed while we walked, or a broken link: its absence counts
                continue
            digest.update(f"{os.path.relpath(path, root)}\0{info.st_size}\0"
                          f"{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _validator_stamp() -> str:
    exe = validator_path()
    return f"{exe}:{os.stat(exe).st_mtime_ns}" if exe else ""


def validate_once(dataset: str | Path, record: str | Path | None = None) -> list[Issue]:
    """:func:`validate`, or its issues as recorded in ``record`` when neither the dataset's
    file listing (:func:`tree_stamp`) nor the validator has changed since.

    The dataset is never written: the record is a JSON file elsewhere (the work folder).
    """
    if record is None:
        return validate(dataset)
    record = Path(record)
    key = f"{tree_stamp(dataset)}:{_validator_stamp()}"
    try:
        saved = json.loads(record.read_text())
        if saved.get("key") == key:
            return [Issue(**issue) for issue in saved["issues"]]
    except (OSError, ValueError, TypeError, KeyError):
        pass  # no usable record: validate
    issues = validate(dataset)
    # The one atomic writer; imported here, after the validator, not at start-up.
    from hermesflow.derivatives.writing import write_json

    write_json(record, {"key": key, "issues": [asdict(i) for i in issues]})
    return issues


def check_dataset(dataset: str | Path, record: str | Path | None = None) -> Findings:
    """Validate; stop on dataset-level errors, attribute the others to their sessions.

    Parameters
    ----------
    record
        Where to keep the validator's report for the next run (:func:`validate_once`);
        None: always run the validator.

    Raises
    ------
    InputError
        For an error outside every ``sub-*`` folder (``dataset_description.json``,
        ``participants.tsv``, ...): nothing can run on such a dataset.
    """
    issues = validate_once(dataset, record)
    errors = [i for i in issues if i.severity == "error"]
    dataset_level = [i for i in errors if i.session is None]
    if dataset_level:
        raise InputError(dataset, f"{len(dataset_level)} dataset-level BIDS error(s), first: "
                         f"{dataset_level[0]}",
                         "fix the dataset (see bids-validator-deno) or pass "
                         "--skip-bids-validation")
    by_session: dict[tuple[str, str | None], list[Issue]] = {}
    for issue in errors:
        by_session.setdefault(issue.session, []).append(issue)
    return Findings(str(dataset), [i for i in issues if i.severity != "error"], by_session)
