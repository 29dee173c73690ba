"""Print the README's table of faults tried: ``python -m tests.fault_table [FOLDER]``.

Simulates the small trial of :mod:`tests.fault_cases` in FOLDER (a temporary folder by
default), runs every fault and prints one markdown row per fault; exits 1 if any row differs
from what the tests expect.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.fault_cases import FAULTS, expected_line, run_fault


def main(argv: list[str]) -> int:
    from hermesflow.simulation.trial import simulate_trial

    root = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="hermesflow-faults-"))
    source = root / "source"
    if not source.exists():
        simulate_trial(source, **__import__("tests.fault_cases").fault_cases.SPEC)
    print("| area | fault | exit | reported as | sound sessions done | input unchanged |")
    print("|---|---|---|---|---|---|")
    wrong = 0
    only = argv[1] if len(argv) > 1 else ""
    for fault in (f for f in FAULTS if only in f.name):
        outcome = run_fault(fault, source, root / "case", root / "work")
        expected = expected_line(fault, root / "case")
        ok = (outcome.status == fault.status and outcome.line.startswith(expected)
              and outcome.completed == fault.completed and outcome.input_unchanged)
        wrong += not ok
        line = outcome.line.replace(str(root / "case"), "…").replace("|", "\\|")
        done = ", ".join(outcome.completed) or "none run"
        print(f"| {fault.area} | {fault.name} | {outcome.status} | `{line}` | {done} | "
              f"{'yes' if outcome.input_unchanged else '**no**'} |"
              + ("" if ok else " **unexpected**"), flush=True)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
