"""Shared fixtures: small simulated trials, each run once per test session through the CLI.

Pipeline tests carry ``pytest.mark.xdist_group`` so that, under ``pytest -n``, every test of a
trial runs in the worker that simulated and processed it (fixtures are per worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from hermesflow.bids.simulate import SimulationSpec, load_truth, simulate_trial
from hermesflow.cli.run import main

# Small enough to keep the suite fast, large enough for a mixed model: 9 patients (6:3).
SMALL = {"participants": 9, "voxel_size": 6.0, "n_blocks": 5, "treated_fraction": 1.0}


@dataclass
class ProcessedTrial:
    bids: Path
    out: Path
    work: Path
    spec: SimulationSpec
    truth_roi: pd.DataFrame
    truth_params: pd.DataFrame

    def group_table(self, desc: str) -> pd.DataFrame:
        path = self.out / "group" / f"task-passivewrist_atlas-juelich_desc-{desc}.tsv"
        return pd.read_csv(path, sep="\t", na_values=["n/a"])


def process_trial(root: Path, **spec_options) -> ProcessedTrial:
    spec = SimulationSpec(**{**SMALL, **spec_options})
    bids, out, work = root / "bids", root / "out", root / "work"
    simulate_trial(bids, spec)
    for level in ("participant", "group"):
        status = main([str(bids), str(out), level, "-w", str(work), "--nprocs", "2"])
        assert status == 0, f"{level} level failed"
    truth_roi, truth_params = load_truth(bids)
    return ProcessedTrial(bids, out, work, spec, truth_roi, truth_params)


@pytest.fixture(scope="session")
def effect_trial(tmp_path_factory) -> ProcessedTrial:
    """A trial with a true arm x time effect in the ipsilesional ROIs."""
    return process_trial(tmp_path_factory.mktemp("effect_trial"), effect_size=0.8, seed=11)


@pytest.fixture(scope="session")
def null_trial(tmp_path_factory) -> ProcessedTrial:
    """A trial with no treatment effect at all."""
    return process_trial(tmp_path_factory.mktemp("null_trial"), effect_size=0.0, seed=12)
