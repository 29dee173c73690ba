"""A session's outputs: the atlas page's ROI table (as pandas' pivot gives it), and the maps
sink, which reruns only when a map in OUTPUT_DIR is not the GLM's copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hermesflow.derivatives.session_report import roi_wide_table


def test_wide_table_equals_pandas_pivot():
    rows = [("mi4p", "ipsi", "L", "psc", 0.4), ("mi4p", "ipsi", "L", "mean_t", 2.5),
            ("mi4p", "contra", "R", "psc", 0.1), ("mi4p", "contra", "R", "mean_t", 0.7),
            ("mi4p", "bilateral", "LR", "li", 0.6),
            ("mi4a", "ipsi", "L", "psc", np.nan), ("mi4a", "ipsi", "L", "mean_t", 1.0)]
    long = pd.DataFrame(rows, columns=["roi", "hemi", "side", "measure", "value"])
    wide = roi_wide_table(long)
    assert wide.columns.tolist() == ["roi", "hemi", "side", "psc", "mean_t", "li"]
    assert wide[["roi", "hemi"]].values.tolist() == [
        ["mi4p", "ipsi"], ["mi4p", "contra"], ["mi4p", "bilateral"], ["mi4a", "ipsi"]]
    assert wide.loc[2, "li"] == 0.6 and np.isnan(wide.loc[2, "psc"])
    pivot = long.pivot_table(index=["roi", "hemi", "side"], columns="measure", values="value",
                             sort=False, dropna=False).reset_index()
    pivot.columns.name = None
    merged = wide.merge(pivot, on=["roi", "hemi", "side"], suffixes=("", "_pandas"))
    for measure in ("psc", "mean_t", "li"):
        np.testing.assert_array_equal(merged[measure], merged[f"{measure}_pandas"])


def test_maps_sink_reruns_only_when_a_written_map_is_not_the_glms(tmp_path):
    from hermesflow.interfaces.bids import MapsSink

    glm = tmp_path / "glm"
    glm.mkdir()
    maps = {}
    for stat in ("z", "effect"):
        maps[stat] = str(glm / f"{stat}.nii.gz")
        (glm / f"{stat}.nii.gz").write_bytes(stat.encode() * 1000)
    sink = MapsSink(output_dir=str(tmp_path / "out"), subject="01", session="01",
                    task="passivewrist", space="MNI152NLin2009cAsym", maps=maps)
    assert sink.always_run, "nothing written yet"
    written = sink.run().outputs.maps
    assert not sink.always_run, "every map is the GLM's copy: the cached node stands"
    target = written["z"]
    with open(target, "ab") as stream:     # a map edited (or half-copied) in OUTPUT_DIR
        stream.write(b"x")
    assert sink.always_run
    sink.run()
    assert not sink.always_run and Path(target).read_bytes() == b"z" * 1000
    Path(written["effect"]).unlink()
    assert sink.always_run, "a deleted map is written again"


@pytest.mark.parametrize("row", [
    {"qc_status": "fail", "qc_reason": "max FD 3.1 mm\tabove 3 mm", "qc_mean_fd": 0.41,
     "qc_max_fd": 3.1, "qc_fraction_above": 0.125},
    {"qc_status": "pass", "qc_reason": None, "qc_mean_fd": 0.1, "qc_max_fd": 0.3,
     "qc_fraction_above": 0.0},
    {"qc_status": "fail", "qc_reason": None, "qc_mean_fd": None, "qc_max_fd": None,
     "qc_fraction_above": None},
    {"roi": "mi4a"},
])
def test_index_line_reads_the_table_as_pandas_reads_it(tmp_path, row):
    from hermesflow.derivatives.index import session_status
    from hermesflow.derivatives.writing import write_tsv

    table = tmp_path / "sub-01_ses-01_task-x_roimeasures.tsv"
    write_tsv(table, pd.DataFrame([row, row]))
    read = pd.read_csv(table, sep="\t", nrows=1, keep_default_na=False, na_values=["n/a"])
    status, line = session_status(table)
    if "qc_status" not in row:
        assert (status, line) == ("n/a", "no motion QC recorded")
        return
    first = read.iloc[0]
    assert status == first["qc_status"]
    assert line.startswith(f"mean FD {first['qc_mean_fd']:.2f} mm, max FD "
                           f"{first['qc_max_fd']:.2f} mm, "
                           f"{100 * first['qc_fraction_above']:.1f}% volumes above threshold")
    reason = first["qc_reason"]
    assert line.endswith(f" ({reason})" if status == "fail" and isinstance(reason, str)
                         else "threshold")
