"""pybids' index kept in the work folder: reused while the dataset is unchanged, never stale,
never written into the dataset."""

from __future__ import annotations

import os
import shutil

import pytest

from hermesflow.bids import index
from hermesflow.bids.layout import (
    _INDEX_FOLDERS,
    keep_index_in,
    load_layout,
    query_sessions,
    session_inputs,
)
from hermesflow.simulation.trial import SimulationSpec, simulate_trial

TASK = "passivewrist"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return simulate_trial(tmp_path_factory.mktemp("index") / "bids", SimulationSpec(
        participants=2, sessions=(1, 6), voxel_size=8.0, n_blocks=2, seed=7))


@pytest.fixture
def bids(source, tmp_path):
    copy = tmp_path / "bids"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("derivatives"))
    yield copy
    _INDEX_FOLDERS.pop(str(copy), None)
    load_layout.cache_clear()


def _listing(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*"))


def _answers(bids):
    """Every answer the pipeline asks of the index, from a layout loaded afresh."""
    load_layout.cache_clear()
    pairs = query_sessions(str(bids), TASK)
    return pairs, [session_inputs(str(bids), s, ses, TASK) for s, ses in pairs]


def test_the_index_is_saved_then_reused_with_the_same_answers(bids, tmp_path):
    before = _listing(bids)
    fresh = _answers(bids)
    keep_index_in(str(bids), tmp_path / "work" / index.INDEX_FOLDER)
    assert _answers(bids) == fresh
    saved = list((tmp_path / "work" / index.INDEX_FOLDER).iterdir())
    assert len(saved) == 1 and (saved[0] / index.DATABASE_NAME).is_file()
    # The next run reads the saved database instead of indexing the dataset.
    assert _answers(bids) == fresh
    assert load_layout(str(bids)).connection_manager.database_file == \
        saved[0] / index.DATABASE_NAME
    assert _listing(bids) == before, "nothing may be written into the dataset"
    assert len(fresh[0]) == 4 and all(inputs.runs[0].t_r == 2.0 for inputs in fresh[1])


def test_a_changed_dataset_is_indexed_again(bids, tmp_path):
    folder = tmp_path / "work" / index.INDEX_FOLDER
    keep_index_in(str(bids), folder)
    assert ("02", "06") in _answers(bids)[0]
    for path in (bids / "sub-02" / "ses-06" / "func").iterdir():
        path.unlink()
    pairs, _ = _answers(bids)
    assert ("02", "06") not in pairs and len(pairs) == 3
    # A sidecar rewritten in place (same name) changes the answers too.
    sidecar = bids / f"task-{TASK}_bold.json"
    sidecar.write_text(sidecar.read_text().replace('"RepetitionTime": 2.0',
                                                   '"RepetitionTime": 2.5'))
    assert {inputs.runs[0].t_r for inputs in _answers(bids)[1]} == {2.5}
    assert len(list(folder.iterdir())) == 3


def test_a_damaged_saved_index_is_rebuilt(bids, tmp_path):
    folder = tmp_path / "work" / index.INDEX_FOLDER
    keep_index_in(str(bids), folder)
    fresh = _answers(bids)
    database = next(folder.iterdir()) / index.DATABASE_NAME
    database.write_bytes(b"not a database")
    assert _answers(bids) == fresh
    assert _answers(bids) == fresh


def test_only_the_latest_indexes_are_kept(bids, tmp_path):
    folder = tmp_path / "work" / index.INDEX_FOLDER
    keep_index_in(str(bids), folder)
    readme = bids / "README"
    for n in range(index.KEEP + 2):
        readme.write_text(f"version {n}\n")
        os.utime(readme, ns=(n * 10**9, n * 10**9))
        _answers(bids)
    assert len(list(folder.iterdir())) == index.KEEP


def test_the_digest_ignores_what_pybids_does_not_index(bids):
    digest = index.listing_digest(bids, ("derivatives",))
    (bids / "derivatives" / "x").mkdir(parents=True)
    (bids / "derivatives" / "x" / "file.txt").write_text("x")
    (bids / ".git").mkdir()
    (bids / ".git" / "HEAD").write_text("ref")
    assert index.listing_digest(bids, ("derivatives",)) == digest
    (bids / "sub-01" / "notes.txt").write_text("new")
    assert index.listing_digest(bids, ("derivatives",)) != digest
