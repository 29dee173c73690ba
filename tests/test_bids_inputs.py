"""Raw inputs as scanners and BIDS converters write them: several runs, multi-echo, filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hermesflow.bids.filters import load_bids_filters, pybids_query, run_entities
from hermesflow.bids.layout import load_layout, query_sessions, session_inputs
from hermesflow.errors import InputError
from hermesflow.simulation.trial import SimulationSpec, simulate_trial

TASK = "passivewrist"


@pytest.fixture(scope="module")
def raw_trial(tmp_path_factory) -> Path:
    """Two participants: sub-01 has two runs in ses-01, sub-02 a three-echo run in ses-01."""
    root = tmp_path_factory.mktemp("rawinputs")
    bids = simulate_trial(root / "bids", SimulationSpec(
        participants=2, sessions=(1, 6), voxel_size=6.0, n_blocks=2, seed=3))
    func = bids / "sub-01" / "ses-01" / "func"
    stem = f"sub-01_ses-01_task-{TASK}"
    for ext in ("_bold.nii.gz", "_events.tsv"):
        source = func / f"{stem}{ext}"
        for run in (1, 2):
            shutil.copyfile(source, func / f"{stem}_run-{run}{ext}")
        source.unlink()
    func = bids / "sub-02" / "ses-01" / "func"
    stem = f"sub-02_ses-01_task-{TASK}"
    source = func / f"{stem}_bold.nii.gz"
    for echo, te in zip((1, 2, 3), (0.015, 0.035, 0.055), strict=True):
        shutil.copyfile(source, func / f"{stem}_echo-{echo}_bold.nii.gz")
        (func / f"{stem}_echo-{echo}_bold.json").write_text(json.dumps({"EchoTime": te}))
    source.unlink()
    load_layout.cache_clear()
    return bids


def test_two_runs_are_two_runs(raw_trial):
    inputs = session_inputs(str(raw_trial), "01", "01", TASK)
    assert [run.label for run in inputs.runs] == ["run-1", "run-2"]
    assert all(Path(run.events).name.endswith(f"_{run.label}_events.tsv") for run in inputs.runs)
    assert all(run.t_r == 2.0 for run in inputs.runs)
    with pytest.raises(InputError, match="2 runs where one was expected"):
        inputs.bold  # noqa: B018  (a single-run reader must not pick one silently)


def test_echoes_of_one_run_are_one_run(raw_trial):
    inputs = session_inputs(str(raw_trial), "02", "01", TASK)
    assert len(inputs.runs) == 1
    assert inputs.runs[0].n_echoes == 3
    assert inputs.events.endswith(f"sub-02_ses-01_task-{TASK}_events.tsv")


def test_a_filter_file_selects_runs_and_sessions(raw_trial, tmp_path):
    path = tmp_path / "filter.json"
    path.write_text(json.dumps({"bold": {"run": 2, "session": "01"}, "t1w": {}}))
    filters = load_bids_filters(path)
    query = pybids_query(filters)
    inputs = session_inputs(str(raw_trial), "01", "01", TASK, bold_filters=query)
    assert [run.label for run in inputs.runs] == ["run-2"]
    assert run_entities(filters) == {"run": "2"}
    pairs = query_sessions(str(raw_trial), TASK, bold_filters={"session": "06"})
    assert pairs == [("01", "06"), ("02", "06")]


def test_null_means_absent(raw_trial):
    # fMRIPrep's null: "no echo entity" keeps the single-echo runs only.
    query = pybids_query({"bold": {"echo": None}})
    pairs = query_sessions(str(raw_trial), TASK, bold_filters=query)
    assert ("02", "01") not in pairs and ("01", "01") in pairs


@pytest.mark.parametrize("content, message", [
    ('{"bold": {"runs": 1}}', "query 'bold' has unknown entit(ies) runs -- use pybids' "
                              "entity names: "),
    ('{"func": {"run": 1}}', "unknown query 'func' -- use fMRIPrep's query names: bold, "),
    ('{"bold": {"run": 1}', "is not valid JSON"),
    ('["bold"]', "must hold a JSON object of queries"),
])
def test_filter_file_mistakes_are_one_line(tmp_path, content, message):
    path = tmp_path / "filter.json"
    path.write_text(content)
    with pytest.raises(InputError) as error:
        load_bids_filters(path)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
