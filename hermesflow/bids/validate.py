"""Run the official BIDS validator (``bids-validator-deno``, schema-based, offline)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hermesflow.errors import InputError

VALIDATOR = "bids-validator-deno"


@dataclass(frozen=True)
class Issue:
    severity: str
    code: str
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} at {self.location or '(dataset)'}: {self.message}".strip()


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
    return [Issue(i.get("severity", ""), i.get("code", ""), i.get("location", ""),
                  i.get("issueMessage", "") or "")
            for i in report["issues"]["issues"]]


def check_dataset(dataset: str | Path) -> list[Issue]:
    """Raise on validator errors (one line: count, first error, fix); return the warnings."""
    issues = validate(dataset)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise InputError(dataset, f"{len(errors)} BIDS error(s), first: {errors[0]}",
                         "fix the dataset (see bids-validator-deno) or pass "
                         "--skip-bids-validation")
    return [i for i in issues if i.severity != "error"]
