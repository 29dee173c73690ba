"""The run configuration round-trips through TOML and refuses what it does not know."""

from __future__ import annotations

import pytest

from hermesflow.config import Config
from hermesflow.errors import ConfigError


def test_round_trip(tmp_path):
    config = Config()
    config.execution.participant_label = ["01", "02"]
    config.workflow.atlas_threshold = 40.0
    config.group.time = "log"
    config.group.covariates = ["age"]
    path = config.save(tmp_path / "run.toml")
    assert Config.load(path).to_dict() == config.to_dict()


def test_unknown_section_and_bad_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[stats]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section \[stats\]"):
        Config.load(path)
    path.write_text("[group\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.load(path)
    with pytest.raises(ConfigError, match="config file not found"):
        Config.load(tmp_path / "missing.toml")
