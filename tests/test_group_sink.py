"""Group files: kept in the node's folder, copied into OUTPUT_DIR/group with BIDS names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hermesflow.derivatives.group_sink import read_group_tables, sink_group, write_group_tables
from hermesflow.derivatives.writing import orphan_temp_files
from hermesflow.errors import HermesflowError


def _tables() -> dict:
    long = pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "session_id": ["ses-01"] * 2,
                         "sex": ["NA", "F"], "outcome": ["fm_motor"] * 2,
                         "value": [12.5, np.nan]})
    models = pd.DataFrame({"outcome": ["fm_motor"], "term": ["Intercept"], "estimate": [3.25]})
    window = pd.DataFrame({"window": ["0-1"], "n_events": [2]})
    return {"long.tsv": long, "long.json": {"value": {"Description": "v"}},
            "mixedlm.tsv": models, "safety_by_window.tsv": window}


def test_node_files_then_output_names(tmp_path):
    node = write_group_tables(tmp_path / "node", _tables())
    assert list(node) == ["long.tsv", "long.json", "mixedlm.tsv", "safety_by_window.tsv"]
    written = sink_group(tmp_path / "out", "passivewrist", "juelich", node)
    group = tmp_path / "out" / "group"
    assert written == {
        "long.tsv": str(group / "task-passivewrist_atlas-juelich_desc-long.tsv"),
        "long.json": str(group / "task-passivewrist_atlas-juelich_desc-long.json"),
        "mixedlm.tsv": str(group / "task-passivewrist_atlas-juelich_desc-mixedlm.tsv"),
        "safety_by_window.tsv": str(group / "task-passivewrist_atlas-juelich"
                                            "_desc-safetybywindow.tsv"),
    }
    assert (group / "task-passivewrist_atlas-juelich_desc-long.tsv").read_text() == (
        "participant_id\tsession_id\tsex\toutcome\tvalue\n"
        "sub-01\tses-01\tNA\tfm_motor\t12.5\nsub-02\tses-01\tF\tfm_motor\tn/a\n")
    assert json.loads(Path(written["long.json"]).read_text()) == {"value": {"Description": "v"}}
    assert orphan_temp_files(group) == []
    long, models, safety = read_group_tables(written)
    pd.testing.assert_frame_equal(long, _tables()["long.tsv"])
    assert models.loc[0, "estimate"] == 3.25
    assert list(safety) == ["by_window"] and safety["by_window"].loc[0, "n_events"] == 2


def test_a_key_without_extension_is_refused(tmp_path):
    with pytest.raises(HermesflowError, match="expected '<desc>.<ext>'"):
        write_group_tables(tmp_path, {"long": pd.DataFrame()})
