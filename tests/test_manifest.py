"""The group level reads only what the participant level certified (derivatives/manifest.py)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from hermesflow.cli.run import main
from hermesflow.derivatives.manifest import (
    complete_session,
    manifest_path,
    select_certified,
    settings_hash,
    start_session,
)
from hermesflow.simulation.trial import simulate_trial

TABLE = "sub-01_ses-01_task-t_space-s_atlas-a_contrast-move_roimeasures.tsv"


def _session(tmp_path, *, settings="s1", start="2026-01-01T00:00:00", name=TABLE):
    bids = tmp_path / "bids"
    bids.mkdir(exist_ok=True)
    raw = bids / f"{name[:13]}_bold.nii.gz"
    raw.write_bytes(b"raw " + name.encode())
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    table = out / name
    path = manifest_path(table)
    start_session(path, inputs=[raw], settings=settings, bids_dir=bids, run={"start": start})
    table.write_text("roi\tvalue\nmi4a\t9.654\n")
    complete_session(path, {"roi_table": table})
    return bids, table, raw


def test_certified_table_passes_and_each_fault_is_refused(tmp_path):
    bids, table, raw = _session(tmp_path)
    assert manifest_path(table).name.endswith("_atlas-a_contrast-move_manifest.json")
    assert select_certified([table], bids) == ([str(table)], [])

    table.write_text("roi\tvalue\nmi4a\t9.")  # cut mid-number
    (refused,) = select_certified([table], bids)[1]
    assert refused.reason == f"{table.name} changed after it was certified (truncated or edited)"
    assert refused.session == ("sub-01", "ses-01")

    _session(tmp_path)
    raw.write_bytes(b"new acquisition")
    assert select_certified([table], bids)[1][0].reason == (
        f"stale: its input {raw.name} changed since")

    _session(tmp_path)
    other = tmp_path / "other_trial"
    assert select_certified([table], other)[1][0].reason.startswith(
        f"made from another dataset ({bids}), not from BIDS_DIR")

    manifest_path(table).unlink()
    assert select_certified([table], bids)[1][0].reason == (
        "no manifest (not certified by a participant run)")

    _session(tmp_path)
    start_session(manifest_path(table), inputs=[raw], settings="s1", bids_dir=bids,
                  run={"start": "2026-02-01T00:00:00"})  # a rerun that never finished
    assert select_certified([table], bids)[1][0].reason == (
        "status 'running' (the last participant run did not complete it)")


def test_tables_of_older_settings_are_stale(tmp_path):
    bids, old, _ = _session(tmp_path, settings="s1", start="2026-01-01T00:00:00")
    _, new, _ = _session(tmp_path, settings="s2", start="2026-03-01T00:00:00",
                         name=TABLE.replace("sub-01", "sub-02"))
    certified, refused = select_certified([old, new], bids)
    assert certified == [str(new)]
    assert [r.reason for r in refused] == [
        "stale: made with other settings (run of 2026-01-01T00:00:00) than the latest run"]


def test_settings_hash_ignores_paths_only():
    base = {"task": "t", "high_pass": 0.01, "fmriprep_dir": "/a", "atlas": "juelich"}
    assert settings_hash(base) == settings_hash({**base, "fmriprep_dir": "/b", "atlas": "x"})
    assert settings_hash(base) != settings_hash({**base, "high_pass": 0.02})


SMALL = {"participants": 4, "sessions": (1, 6), "voxel_size": 8.0, "n_blocks": 3}


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    root = tmp_path_factory.mktemp("manifest")
    bids = simulate_trial(root / "bids", seed=3, **SMALL)
    argv = [str(bids), str(root / "out"), "participant", "-w", str(root / "work"),
            "--skip-bids-validation", "--nprocs", "2"]
    assert main(argv) == 0
    return root, bids


def test_group_refuses_truncated_stale_and_foreign_tables(processed, tmp_path, caplog):
    root, bids = processed
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    func = "sub-{0}/ses-{1}/func"
    name = ("sub-{0}_ses-{1}_task-passivewrist_space-MNI152NLin2009cAsym_atlas-juelich_"
            "contrast-move_roimeasures.tsv")
    # Truncated: cut mid-number.
    truncated = out / func.format("01", "01") / name.format("01", "01")
    text = truncated.read_text()
    truncated.write_text(text[: text.index(".", len(text) // 2) + 2])
    # Stale: the rerun of sub-01 ses-06 fails (its preprocessed BOLD is now unreadable), so
    # its table on disk is the old run's.
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(bids / "derivatives" / "fmriprep", fmriprep)
    bold = next((fmriprep / "sub-01/ses-06/func").glob("*_desc-preproc_bold.nii.gz"))
    bold.write_bytes(bold.read_bytes()[:5000])
    assert main([str(bids), str(out), "participant", "-w", str(tmp_path / "work"),
                 "--participant-label", "01", "--session-label", "06", "--fmriprep-dir",
                 str(fmriprep), "--skip-bids-validation"]) == 1
    # Foreign: sub-02 ses-06's outputs copied from another trial (same labels, other data).
    other = simulate_trial(tmp_path / "other", seed=4, **SMALL)
    assert main([str(other), str(tmp_path / "other_out"), "participant", "-w",
                 str(tmp_path / "other_work"), "--participant-label", "02", "--session-label",
                 "06", "--skip-bids-validation"]) == 0
    source = tmp_path / "other_out" / func.format("02", "06")
    for path in source.glob("*"):
        shutil.copy2(path, out / func.format("02", "06") / path.name)
    caplog.clear()
    status = main([str(bids), str(out), "group", "-w", str(tmp_path / "work"),
                   "--n-permutations", "0"])
    assert status == 1, "tables were left out"
    listing = pd.read_csv(out / "group" / "task-passivewrist_atlas-juelich_desc-excluded.tsv",
                          sep="\t")
    assert listing[["participant_id", "session_id"]].values.tolist() == [
        ["sub-01", "ses-01"], ["sub-01", "ses-06"], ["sub-02", "ses-06"]]
    reasons = listing["reason"].tolist()
    assert reasons[0] == f"{truncated.name} changed after it was certified (truncated or edited)"
    assert reasons[1] == "status 'running' (the last participant run did not complete it)"
    assert reasons[2] == f"made from another dataset ({other}), not from BIDS_DIR"
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum(m.startswith("left out of the group: ") for m in warned) == 3
    long = pd.read_csv(out / "group" / "task-passivewrist_atlas-juelich_desc-long.tsv",
                       sep="\t")
    imaging = long[long["outcome"] == "mi4p_ipsi_psc"]
    assert sorted(zip(imaging["participant_id"], imaging["session_id"], strict=True)) == [
        ("sub-02", "ses-01"), ("sub-03", "ses-01"), ("sub-03", "ses-06"), ("sub-04", "ses-01"),
        ("sub-04", "ses-06")]
    manifest = json.loads(manifest_path(truncated).read_text())
    assert manifest["status"] == "complete" and manifest["inputs"]


def test_hash_cache_rehashes_only_changed_files(tmp_path, monkeypatch):
    import hermesflow.derivatives.manifest as manifest

    files = [tmp_path / f"f{i}.bin" for i in range(3)]
    for i, path in enumerate(files):
        path.write_bytes(bytes([i]) * 1000)
    hashed = []
    real = manifest.file_hash
    monkeypatch.setattr(manifest, "file_hash", lambda p: hashed.append(p) or real(p))
    cache = manifest.HashCache(tmp_path / "work" / "hashes.json")
    first = [cache(p) for p in files]
    assert first == [real(p) for p in files] and len(hashed) == 3
    cache.save()
    files[1].write_bytes(b"edited, and longer than before")
    again = manifest.HashCache(tmp_path / "work" / "hashes.json")
    second = [again(p) for p in files]
    assert hashed[3:] == [files[1]], "only the edited file is read again"
    assert second[0] == first[0] and second[2] == first[2]
    assert second[1] == real(files[1]) != first[1]


def test_pending_input_digests_come_from_the_background_hashing(tmp_path, monkeypatch):
    """A participant run starts its manifests with the inputs' digests pending; the sink
    fills them in from the run's background hashing, each file read once, or reads them
    itself outside a run (a sink in a cluster job)."""
    import hashlib

    import hermesflow.derivatives.manifest as manifest

    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    out.mkdir()
    files = [bids / f"f{i}_bold.nii.gz" for i in range(3)]
    for i, path in enumerate(files):
        path.write_bytes(bytes([i]) * (3 << 20))
    truth = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    hashed = []
    real = manifest.file_hash
    monkeypatch.setattr(manifest, "file_hash", lambda p: (
        str(p).endswith("_bold.nii.gz") and hashed.append(str(p))) or real(p))
    tables = [out / TABLE.replace("sub-01", f"sub-0{i}") for i in (1, 2)]
    inputs = {tables[0]: files[:2], tables[1]: files[1:]}
    for table, used in inputs.items():
        start_session(manifest_path(table), inputs=used, settings="s1", bids_dir=bids,
                      run={"start": "2026-01-01T00:00:00"}, hasher=lambda _: None)
        assert set(json.loads(manifest_path(table).read_text())["inputs"].values()) == {None}
        table.write_text("roi\tvalue\nmi4a\t1.5\n")
    cache = manifest.HashCache(tmp_path / "work" / "hashes.json")
    assert cache.known(files[0]) is None
    with manifest.InputHashes(cache, [*files, files[1]]):
        for table in tables:
            complete_session(manifest_path(table), {"roi_table": table})
    assert sorted(hashed) == sorted(truth), "each input read once, by the background thread"
    for table, used in inputs.items():
        recorded = json.loads(manifest_path(table).read_text())["inputs"]
        assert recorded == {str(p): truth[str(p)] for p in used}
    # The cache was saved on the way out: a later run knows the digests without reading.
    later = manifest.HashCache(tmp_path / "work" / "hashes.json")
    assert [later.known(p) for p in files] == [truth[str(p)] for p in files]
    assert later(files[0]) == truth[str(files[0])]
    assert len(hashed) == 3
    assert select_certified(tables, bids) == ([str(t) for t in tables], [])
    # Outside a run (a sink in a cluster job), the sink reads the pending inputs itself.
    hashed.clear()
    start_session(manifest_path(tables[0]), inputs=files[:1], settings="s1", bids_dir=bids,
                  run={"start": "2026-01-02T00:00:00"}, hasher=lambda _: None)
    complete_session(manifest_path(tables[0]), {"roi_table": tables[0]})
    assert hashed == [str(files[0])]
    assert json.loads(manifest_path(tables[0]).read_text())["inputs"] == {
        str(files[0]): truth[str(files[0])]}
    files[2].write_bytes(b"edited")
    assert later.known(files[2]) is None, "a changed file is not known"
