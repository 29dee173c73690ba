"""The table of malformed inputs (tests/fault_cases.py): each one exact line, its exit status,
the sound sessions completed, and the input tree's bytes unchanged."""

from __future__ import annotations

import pytest

from hermesflow.simulation.trial import simulate_trial
from tests.fault_cases import FAULTS, SPEC, expected_line, run_fault


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    return simulate_trial(root / "source", **SPEC), root


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_reported_in_one_line(trial, fault):
    source, root = trial
    outcome = run_fault(fault, source, root / "case", root / "work")
    assert outcome.status == fault.status
    assert outcome.line.startswith(expected_line(fault, root / "case")), outcome.line
    assert "\n" not in outcome.line and "Traceback" not in outcome.line
    assert outcome.completed == fault.completed, "the sound sessions completed"
    assert outcome.input_unchanged, "the input tree is never modified"
