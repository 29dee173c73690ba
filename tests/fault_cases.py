"""Malformed inputs tried on a small simulated trial: one table drives the tests and the README.

Each :class:`Fault` damages a fresh copy of the trial (or passes bad options), runs
``hermesflow`` once and records the exit status, the one line that reports the fault, the
sessions that completed and whether the input tree's bytes changed.  ``tests/test_faults.py``
asserts every row; ``python -m tests.fault_table`` prints the table the README shows.

Session-level faults run on participant 01 only (its ses-01 sound, its ses-06 damaged) so the
sound session's completion is checked at the cost of one cached GLM.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SPEC = {"participants": 2, "sessions": (1, 6), "voxel_size": 8.0, "n_blocks": 3, "seed": 3}
TASK = "passivewrist"
SES06 = "sub-01/ses-06"
EVENTS06 = f"{SES06}/func/sub-01_ses-06_task-{TASK}_events.tsv"
PREP06 = f"derivatives/fmriprep/{SES06}/func/sub-01_ses-06_task-{TASK}"


@dataclass(frozen=True)
class Fault:
    """One malformed input: how to make it, the options, and what hermesflow must answer."""

    name: str
    area: str
    damage: Callable[[Path, Path], list[str]] | None  # (bids, root) -> extra argv
    status: int
    message: str  # the reporting line, with {bids} / {root} for the case's folders
    completed: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=("--skip-bids-validation",))


def _write(path: Path, text: str | bytes) -> None:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _edit_table(path: Path, edit: Callable[[list[list[str]]], list[list[str]]]) -> None:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    path.write_text("\n".join("\t".join(row) for row in edit(rows)) + "\n")


def _config(text: str) -> Callable[[Path, Path], list[str]]:
    def damage(bids: Path, root: Path) -> list[str]:
        _write(root / "bad.toml", text)
        return ["--config", str(root / "bad.toml")]
    return damage


def _events06(text: str) -> Callable[[Path, Path], list[str]]:
    def damage(bids: Path, root: Path) -> list[str]:
        _write(bids / EVENTS06, text)
        return []
    return damage


def _participants(edit) -> Callable[[Path, Path], list[str]]:
    def damage(bids: Path, root: Path) -> list[str]:
        _edit_table(bids / "participants.tsv", edit)
        return []
    return damage


def _set_column(column: str, row: int, value: str):
    def edit(rows):
        rows[row][rows[0].index(column)] = value
        return rows
    return edit


def _drop_column(column: str):
    def edit(rows):
        index = rows[0].index(column)
        return [r[:index] + r[index + 1:] for r in rows]
    return edit


def _sidecar06(content: str) -> Callable[[Path, Path], list[str]]:
    def damage(bids: Path, root: Path) -> list[str]:
        _write(bids / f"{SES06}/func/sub-01_ses-06_task-{TASK}_bold.json", content)
        return []
    return damage


def _remove(relative: str) -> Callable[[Path, Path], list[str]]:
    def damage(bids: Path, root: Path) -> list[str]:
        next(bids.glob(relative)).unlink()
        return []
    return damage


def _args(*argv: str) -> Callable[[Path, Path], list[str]]:
    def damage(bids: Path, root: Path) -> list[str]:
        return [a.format(bids=bids, root=root) for a in argv]
    return damage


def _non_utf8(bids: Path, root: Path) -> list[str]:
    path = bids / "participants.tsv"
    _write(path, path.read_text().replace("msc", "m\xe9sc").encode("latin-1"))
    return []


def _live_lock(bids: Path, root: Path) -> list[str]:
    # Another run, alive: a process of ours that outlives the attempt.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    logs = root / "out" / "logs"
    logs.mkdir(parents=True)
    record = {"host": os.uname().nodename, "pid": other.pid, "start": "2026-01-01T00:00:00",
              "level": "participant", "participants": [], "work_dir": str(root / "other")}
    (logs / f".run-{record['host']}-{other.pid}.json").write_text(json.dumps(record))
    (root / "other.pid").write_text(str(other.pid))
    return []


def _bold06(values: Callable) -> Callable[[Path, Path], list[str]]:
    """Replace the preprocessed BOLD of ses-06 by ``values(data)`` (same grid and header)."""
    def damage(bids: Path, root: Path) -> list[str]:
        import nibabel as nib
        import numpy as np

        path = bids / (PREP06 + "_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
        img = nib.load(path)
        data = values(np.asarray(img.dataobj, dtype=np.float32))
        img.header.set_data_dtype(np.float32)
        nib.save(nib.Nifti1Image(data, img.affine, img.header), path)
        return []
    return damage


def _lesion_other_grid(bids: Path, root: Path) -> list[str]:
    import nibabel as nib
    import numpy as np

    path = bids / f"derivatives/fmriprep/{SES06}/anat/sub-01_ses-06_space-" \
        "MNI152NLin2009cAsym_label-lesion_roi.nii.gz"
    img = nib.load(path)
    cropped = np.asarray(img.dataobj)[:-1]
    nib.save(nib.Nifti1Image(cropped, img.affine, img.header), path)
    return []


def _duplicate_participant(rows):
    return [*rows, rows[1]]


def _filter_file(bids: Path, root: Path) -> list[str]:
    _write(root / "filter.json", json.dumps({"bold": {"acquisitionn": "fast"}}))
    return ["--bids-filter-file", str(root / "filter.json")]


def _atlas_table_mismatch(bids: Path, root: Path) -> list[str]:
    import nibabel as nib
    import numpy as np

    mask = nib.load(bids / (PREP06 + "_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"))
    labels = np.zeros(mask.shape, np.int16)
    half = mask.shape[0] // 2
    labels[:half][np.asarray(mask.dataobj)[:half] > 0] = 1
    labels[half:][np.asarray(mask.dataobj)[half:] > 0] = 2
    image = root / "tpl-MNI152NLin2009cAsym_atlas-hand_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, mask.affine), image)
    _write(image.with_name("tpl-MNI152NLin2009cAsym_atlas-hand_dseg.tsv"),
           "index\tname\n1\thand_L\n2\thand_R\n3\tfoot_L\n")
    return ["--atlas", str(image)]


S1 = ("sub-01_ses-01",)
ONE = ("--skip-bids-validation", "--participant-label", "01")
DONE_NOTHING: tuple[str, ...] = ()

FAULTS = [
    # --- configuration file ---
    Fault("config: unknown key", "config", _config("[workflow]\natlass = 'juelich'\n"), 2,
          "{root}/bad.toml: unknown key 'atlass' in [workflow] -- use one of "),
    Fault("config: wrong type", "config", _config("[group]\nn_permutations = '100'\n"), 2,
          "{root}/bad.toml: [group] n_permutations = '100' is not an integer -- write "
          "n_permutations as an integer"),
    Fault("config: unknown time coding", "config", _config("[group]\ntime = 'quadratic'\n"), 2,
          "{root}/bad.toml: [group] time = 'quadratic': unknown value 'quadratic' -- use one "
          "of categorical, linear, log"),
    Fault("config: unknown ddf", "config", _config("[group]\nddf = 'kenward'\n"), 2,
          "{root}/bad.toml: [group] ddf = 'kenward': unknown value 'kenward' -- use one of "
          "satterthwaite, asymptotic"),
    Fault("config: unknown preproc", "config", _config("[workflow]\npreproc = 'spm'\n"), 2,
          "{root}/bad.toml: [workflow] preproc = 'spm': unknown value 'spm' -- use one of "
          "existing, fmriprep, native"),
    Fault("config: boolean as number", "config", _config("[group]\nrandom_slope = 1\n"), 2,
          "{root}/bad.toml: [group] random_slope = 1 is not true or false -- write "
          "random_slope as true or false"),
    Fault("config: list as string", "config", _config("[workflow]\nconfounds = 'trans_x'\n"),
          2, "{root}/bad.toml: [workflow] confounds = 'trans_x' is not a list of strings -- "
          "write confounds as a list of strings"),
    Fault("config: unknown section", "config", _config("[glm]\nhrf = 'spm'\n"), 2,
          "{root}/bad.toml: unknown section [glm] -- use one of "),
    Fault("config: not TOML", "config", _config("[group\n"), 2,
          "{root}/bad.toml: not valid TOML ("),
    Fault("config: file missing", "config", _args("--config", "{root}/none.toml"), 2,
          "{root}/none.toml: config file not found -- check the --config path"),
    # --- command line and folders ---
    Fault("CLI: unknown participant", "CLI", _args("--participant-label", "99"), 2,
          "{bids}: unknown participant label(s) 99"),
    Fault("CLI: output is the raw dataset", "CLI", _args("--output-dir-is", "{bids}"), 2,
          "{bids}: output folder is the raw dataset -- set OUTPUT_DIR outside BIDS_DIR (or "
          "under BIDS_DIR/derivatives) and outside the fMRIPrep folder"),
    Fault("CLI: output is fMRIPrep's folder", "CLI",
          _args("--output-dir-is", "{bids}/derivatives/fmriprep"), 2,
          "{bids}/derivatives/fmriprep: output folder is the fMRIPrep derivatives folder -- "
          "set OUTPUT_DIR outside BIDS_DIR (or under BIDS_DIR/derivatives) and outside the "
          "fMRIPrep folder"),
    Fault("CLI: output holds the inputs", "CLI", _args("--output-dir-is", "{root}"), 2,
          "{root}: output folder holds the raw dataset ({bids}) -- set OUTPUT_DIR outside "
          "BIDS_DIR (or under BIDS_DIR/derivatives) and outside the fMRIPrep folder"),
    Fault("CLI: work folder in the raw dataset", "CLI", _args("-w", "{bids}/work"), 2,
          "{bids}/work: work folder is inside the raw dataset -- set -w/--work-dir outside "
          "BIDS_DIR (or under BIDS_DIR/derivatives) and outside the fMRIPrep folder"),
    Fault("CLI: fMRIPrep folder missing", "CLI", _args("--fmriprep-dir", "{root}/nope"), 2,
          "{root}/nope: fMRIPrep derivatives folder not found -- pass --fmriprep-dir, or "
          "--preproc fmriprep to run fMRIPrep"),
    Fault("CLI: OUTPUT_DIR locked by a live run", "CLI", _live_lock, 2,
          "{root}/out: in use by another hermesflow run (host "),
    Fault("CLI: group before participant", "CLI", _args("--level-is", "group"), 2,
          "{root}/out: no ROI tables for atlas 'juelich' -- run the participant level first "
          "(same OUTPUT_DIR and --atlas)"),
    Fault("atlas: file missing", "atlas", _args("--atlas", "{root}/none_dseg.nii.gz"), 2,
          "{root}/none_dseg.nii.gz: "),
    # --- participants table ---
    Fault("participants: non-UTF-8", "participants", _non_utf8, 2,
          "{bids}/participants.tsv: is not UTF-8 text (byte 0xe9 at offset "),
    Fault("participants: no arm column", "participants",
          _participants(_drop_column("arm")), 2, "{bids}/participants.tsv: lacks column(s) "
          "arm -- add arm (randomised) and treated (yes/no) columns"),
    Fault("participants: treated 'maybe'", "participants",
          _participants(_set_column("treated", 1, "maybe")), 2,
          "{bids}/participants.tsv: column 'treated' has value(s) maybe -- write yes or no"),
    # --- events of one session (the other completes) ---
    Fault("events: no trial_type column", "events",
          _events06("onset\tduration\n20\t20\n"), 1,
          "sub-01 ses-06: {bids}/" + EVENTS06 + ": lacks column(s) trial_type -- add onset, "
          "duration and trial_type columns", S1, ONE),
    Fault("events: no 'move' blocks", "events",
          _events06("onset\tduration\ttrial_type\n20\t20\trest\n"), 1,
          "sub-01 ses-06: {bids}/" + EVENTS06 + ": no 'move' blocks in trial_type -- label "
          "the movement blocks 'move'", S1, ONE),
    Fault("events: file missing", "events", _remove(EVENTS06), 1,
          "sub-01 ses-06: {bids}/" + EVENTS06 + ": events file missing -- write "
          "onset/duration/trial_type blocks", S1, ONE),
    Fault("sidecar: RepetitionTime null", "sidecar", _sidecar06('{"RepetitionTime": null}'), 1,
          "sub-01 ses-06: {bids}/" + SES06 + f"/func/sub-01_ses-06_task-{TASK}_bold.nii.gz: "
          "sidecar has no RepetitionTime -- add it to the JSON sidecar", S1, ONE),
    Fault("fMRIPrep: confounds missing", "confounds",
          _remove(PREP06 + "_desc-confounds_timeseries.tsv"), 1,
          "sub-01 ses-06: {bids}/derivatives/fmriprep/" + SES06, S1, ONE),
    Fault("fMRIPrep: BOLD missing", "BOLD",
          _remove(PREP06 + "_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"), 1,
          "sub-01 ses-06: {bids}/derivatives/fmriprep/" + SES06, S1, ONE),
    Fault("fMRIPrep: mask missing", "mask",
          _remove(PREP06 + "_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"), 1,
          "sub-01 ses-06: {bids}/derivatives/fmriprep/" + SES06, S1, ONE),
    # --- added for issue 13: trial-design tables, degenerate data, grids, options ---
    Fault("config: number as string", "config", _config("[workflow]\nhigh_pass = '0.01'\n"),
          2, "{root}/bad.toml: [workflow] high_pass = '0.01' is not a number -- write "
          "high_pass as a number"),
    Fault("CLI: filter with an unknown entity", "CLI", _filter_file, 2,
          "{root}/filter.json: query 'bold' has unknown entit(ies) acquisitionn -- use pybids' "
          "entity names: acquisition, "),
    Fault("atlas: table does not match its labels", "atlas", _atlas_table_mismatch, 2,
          "{root}/tpl-MNI152NLin2009cAsym_atlas-hand_dseg.tsv: table does not match the image "
          "{root}/tpl-MNI152NLin2009cAsym_atlas-hand_dseg.nii.gz: label(s) 3 of the table are "
          "not in the image -- use the label table written for this image"),
    Fault("participants: duplicate row", "participants",
          _participants(_duplicate_participant), 2,
          "{bids}/participants.tsv: participant(s) sub-01 have more than one row -- keep one "
          "row per participant"),
    Fault("participants: arm 'contol'", "participants",
          _participants(_set_column("arm", 1, "contol")), 2,
          "{bids}/participants.tsv: participant sub-01: arm 'contol' is not control or msc -- "
          "fix the row, or set control_arm / treatment_arm in [group]"),
    Fault("participants: treated '1'", "participants",
          _participants(_set_column("treated", 2, "1")), 2,
          "{bids}/participants.tsv: column 'treated' has value(s) 1 -- write yes or no"),
    Fault("events: n/a onset", "events",
          _events06("onset\tduration\ttrial_type\nn/a\t20\tmove\n60\t20\tmove\n"), 1,
          "sub-01 ses-06 (glm): {bids}/" + EVENTS06 + ": 1 'move' event(s) without a numeric "
          "onset or duration -- write seconds as numbers (n/a is not allowed here)", S1, ONE),
    Fault("events: all after the scan", "events",
          _events06("onset\tduration\ttrial_type\n500\t20\tmove\n540\t20\tmove\n"), 1,
          "sub-01 ses-06 (glm): {bids}/" + EVENTS06 + ": 2 'move' event(s) outside the scan (first "
          "at 500 s; the scan lasts 120 s) -- use the events of this run, in seconds from its "
          "first volume", S1, ONE),
    Fault("sidecar: not valid JSON", "sidecar", _sidecar06('{"RepetitionTime": 2.0,'), 1,
          "sub-01 ses-06: {bids}/" + SES06 + f"/func/sub-01_ses-06_task-{TASK}_bold.json: not "
          "valid JSON (Expecting property name enclosed in double quotes: line 1 column 24 "
          "(char 23)) -- fix the JSON syntax", S1, ONE),
    Fault("BOLD: all NaN", "BOLD", _bold06(lambda d: d * float("nan")), 1,
          "sub-01 ses-06 (glm): {bids}/" + PREP06 + "_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz: "
          "819720 non-finite value(s) (NaN or inf) in the BOLD series -- rerun the "
          "preprocessing of this run, or replace them before the GLM", S1, ONE),
    Fault("BOLD: all zero", "BOLD", _bold06(lambda d: d * 0), 1,
          "sub-01 ses-06 (glm): {bids}/" + PREP06 + "_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz: "
          "3612 of 3612 voxels inside the brain mask have a constant series (no signal) -- "
          "check the preprocessing output; an all-zero or flat BOLD cannot be modelled", S1,
          ONE),
    Fault("lesion: on another grid", "lesion", _lesion_other_grid, 1,
          "sub-01 ses-06 (roi): {bids}/derivatives/fmriprep/" + SES06 + "/anat/sub-01_ses-06_"
          "space-MNI152NLin2009cAsym_label-lesion_roi.nii.gz: grid 21x27x23 at 8x8x8 mm "
          "differs from 22x27x23 at 8x8x8 mm of mask.nii.gz -- give every image of the "
          "session on the BOLD's grid (hermesflow does not resample them)", S1, ONE),
]


def tree_digest(root: Path) -> str:
    """SHA-256 over every path and file's bytes under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class Outcome:
    status: int
    line: str
    completed: tuple[str, ...]
    input_unchanged: bool


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def run_fault(fault: Fault, source: Path, root: Path, work: Path) -> Outcome:
    """Damage a copy of ``source`` under ``root`` and run hermesflow's participant level.

    ``root/bids`` is the same path for every case, and copies keep modification times, so a
    sound session's nodes are found in the shared ``work`` cache.
    """
    import contextlib
    import io

    from hermesflow.bids.layout import load_layout
    from hermesflow.cli.run import main

    # One process runs every case on the same path: pybids' index must not outlive a case.
    load_layout.cache_clear()
    bids = root / "bids"
    shutil.rmtree(root / "out", ignore_errors=True)
    shutil.rmtree(bids, ignore_errors=True)
    for stray in ("bad.toml", "other.pid", "filter.json",
                  "tpl-MNI152NLin2009cAsym_atlas-hand_dseg.nii.gz",
                  "tpl-MNI152NLin2009cAsym_atlas-hand_dseg.tsv"):
        (root / stray).unlink(missing_ok=True)
    shutil.copytree(source, bids)
    extra = fault.damage(bids, root) if fault.damage else []
    before = tree_digest(bids)
    out, level = root / "out", "participant"
    if "--output-dir-is" in extra:
        out = Path(extra.pop(extra.index("--output-dir-is") + 1))
        extra.remove("--output-dir-is")
    if "--level-is" in extra:
        level = extra.pop(extra.index("--level-is") + 1)
        extra.remove("--level-is")
    argv = [str(bids), str(out), level, "-w", str(work), "--nprocs", "2", *fault.options,
            *extra]
    errors, stderr = _Lines(), io.StringIO()
    logging.getLogger("hermesflow").addHandler(errors)
    try:
        with contextlib.redirect_stderr(stderr):
            status = main(argv)
    finally:
        logging.getLogger("hermesflow").removeHandler(errors)
        pid = root / "other.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), 9)
    said = [line for line in stderr.getvalue().splitlines() if line.startswith("hermesflow:")]
    line = errors.lines[0] if errors.lines else said[-1].removeprefix("hermesflow: error: ") \
        if said else ""
    completed = tuple(sorted(p.name.split("_task")[0]
                             for p in (root / "out").rglob("*_roimeasures.tsv")))
    return Outcome(status, line, completed, tree_digest(bids) == before)


def expected_line(fault: Fault, root: Path) -> str:
    return fault.message.format(bids=root / "bids", root=root)
