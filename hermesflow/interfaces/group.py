"""Nipype door to the group stage (:mod:`hermesflow.group.long_table`)."""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from hermesflow.config import Config
from hermesflow.group.run import run_group


class _GroupModelsInputSpec(BaseInterfaceInputSpec):
    roi_tables = InputMultiObject(File(exists=True), mandatory=True)
    bids_dir = Directory(mandatory=True)
    output_dir = Directory(mandatory=True)
    config = File(mandatory=True, desc="the run's TOML configuration")
    n_expected = traits.Int(desc="sessions expected (for the log)")


class _GroupModelsOutputSpec(TraitedSpec):
    long_table = File(exists=True)
    models = File(exists=True)


class GroupModels(SimpleInterface):
    """Long table + mixed models of all sessions (the JoinNode's consumer)."""

    input_spec = _GroupModelsInputSpec
    output_spec = _GroupModelsOutputSpec

    def _run_interface(self, runtime):
        config = Config.load(self.inputs.config)
        outputs = run_group(list(self.inputs.roi_tables), self.inputs.bids_dir,
                            self.inputs.output_dir, config)
        self._results["long_table"] = outputs["long_table"]
        self._results["models"] = outputs["models"]
        (Path(runtime.cwd) / "outputs.json").write_text(json.dumps(outputs, indent=2))
        return runtime
